// The dashboard and logging flags of `disttrain train`, parsed and checked at the command line so a bad value is
// one clear error line: --dashboard-port, --dashboard-bind, --no-dashboard, --log-json and the gradient thresholds.
using System.Globalization;
using System.Net;
using DistTrain.Coordinator.Cli;
using DistTrain.Core;

namespace DistTrain.Coordinator.Dashboard;

public sealed record DashboardOptions
{
    public bool Enabled { get; init; } = true;
    /// <summary>TCP port; 0 lets the system pick a free one (the address is logged).</summary>
    public int Port { get; init; } = 8080;
    /// <summary>Loopback unless configured: the dashboard has no authentication.</summary>
    public IPAddress Bind { get; init; } = IPAddress.Loopback;
    public bool LogJson { get; init; }
    public double VanishingBelow { get; init; } = 1e-7;
    public double ExplodingAbove { get; init; } = 1e3;
    /// <summary>Concurrent Server-Sent-Events clients served; more get 503.</summary>
    public int MaxEventClients { get; init; } = 200;
    /// <summary>Points kept per history (steps, epochs); older points are averaged, never dropped.</summary>
    public int HistoryPoints { get; init; } = 600;
    public TimeSpan PushInterval { get; init; } = TimeSpan.FromMilliseconds(250);

    public static DashboardOptions FromFlags(CommandOptions flags)
    {
        var options = new DashboardOptions
        {
            Enabled = !flags.Has("--no-dashboard"),
            LogJson = flags.Has("--log-json"),
            Port = flags.GetInt("--dashboard-port", min: 0) ?? 8080,
            VanishingBelow = flags.GetDouble("--grad-vanish-below", min: 0) ?? 1e-7,
            ExplodingAbove = flags.GetDouble("--grad-explode-above", min: 0) ?? 1e3,
        };
        if (options.Port > 65535) throw new UserInputException($"train: --dashboard-port must be 0..65535, found {options.Port}");
        if (flags.Get("--dashboard-bind") is { } bind)
        {
            var address = bind == "localhost" ? IPAddress.Loopback
                : IPAddress.TryParse(bind, out var parsed) ? parsed
                : throw new UserInputException($"train: --dashboard-bind expects an IP address (127.0.0.1, 0.0.0.0, ::1), found '{bind}'");
            options = options with { Bind = address };
        }
        if (!(options.ExplodingAbove > options.VanishingBelow))
            throw new UserInputException(
                $"train: --grad-explode-above ({options.ExplodingAbove}) must be greater than --grad-vanish-below ({options.VanishingBelow})");
        return options;
    }
}
