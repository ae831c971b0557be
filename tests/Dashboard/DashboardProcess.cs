// A real `disttrain train` process with its dashboard on a free loopback port (--dashboard-port 0, address read from
// its log), training a small synthetic config for far longer than any test; disposed by killing exactly its pid.
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using DistTrain.Tests.Cli;
using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Dashboard;

public sealed partial class DashboardProcess : IDisposable
{
    private readonly TempDirectory _directory = new();
    private readonly CliProcess _process;

    public DashboardProcess(Action<JsonObject>? configure = null, params string[] extraArgs)
    {
        // 20 000 samples in batches of 50: 400 steps an epoch, a million epochs: it runs until killed.
        var config = ConfigFiles.Blobs(samples: 20_000, epochs: 1_000_000, batch: 50, shard: 25);
        config["training"]!["threads"] = 1;
        configure?.Invoke(config);
        string path = ConfigFiles.Write(_directory.Path, config);
        _process = CliProcess.Start("disttrain.dll", ["train", "--config", path, "--dashboard-port", "0", .. extraArgs]);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (DateTime.UtcNow < deadline && !_process.HasExited)
        {
            if (AddressLine().Match(_process.Stderr) is { Success: true } m)
            {
                Address = new Uri(m.Groups[1].Value);
                Http = new HttpClient { BaseAddress = Address, Timeout = TimeSpan.FromSeconds(10) };
                return;
            }
            Thread.Sleep(50);
        }
        string stderr = _process.Stderr;
        Dispose();
        throw new InvalidOperationException($"disttrain printed no dashboard address within 30 s; stderr:\n{stderr}");
    }

    public Uri Address { get; } = null!;
    public HttpClient Http { get; } = null!;
    public bool HasExited => _process.HasExited;
    public string Stderr => _process.Stderr;
    public int Pid => _process.Pid;

    public async Task<JsonElement> StatusAsync()
    {
        using var response = await Http.GetAsync("api/status");
        response.EnsureSuccessStatusCode();
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    public async Task<long> StepAsync() => (await StatusAsync()).GetProperty("training").GetProperty("step").GetInt64();

    /// <summary>Polls (bounded) until the step counter passes <paramref name="after"/>; returns the new step.</summary>
    public async Task<long> WaitForStepAfterAsync(long after, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        long step;
        while ((step = await StepAsync()) <= after)
        {
            Assert.True(DateTime.UtcNow < deadline, $"step stayed at {step} (≤ {after}) for {timeout.TotalSeconds} s");
            await Task.Delay(100);
        }
        return step;
    }

    public void Dispose()
    {
        Http?.Dispose();
        _process.Dispose();
        _directory.Dispose();
    }

    [GeneratedRegex(@"dashboard: (http://[^\s/]+/)")]
    private static partial Regex AddressLine();
}

/// <summary>One long-running training process shared by the dashboard tests that only watch it.</summary>
public sealed class SharedDashboardRun : IDisposable
{
    public DashboardProcess Run { get; } = new();
    public void Dispose() => Run.Dispose();
}

[CollectionDefinition(Name)]
public sealed class DashboardCollection : ICollectionFixture<SharedDashboardRun>
{
    public const string Name = "dashboard process";
}
