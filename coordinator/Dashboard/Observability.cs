// What the train command adds for watching a run: the ILogger factory, the --log-json event log and the dashboard
// (telemetry, workers, Prometheus, Kestrel), built from the flags. Distributed mode passes its own worker source.
using System.Text.Json;
using DistTrain.Coordinator.Cli;
using DistTrain.Core.Model;
using DistTrain.Core.Training;
using Microsoft.Extensions.Logging;

namespace DistTrain.Coordinator.Dashboard;

public sealed class Observability : IAsyncDisposable
{
    private readonly DashboardServer? _server;

    private Observability(ILoggerFactory loggers, DashboardServer? server, PrometheusExporter? exporter, List<TrainingObserver> observers)
    {
        Loggers = loggers;
        _server = server;
        Exporter = exporter;
        Observers = observers;
    }

    public ILoggerFactory Loggers { get; }
    /// <summary>Observers to add to the trainer's composite.</summary>
    public IReadOnlyList<TrainingObserver> Observers { get; }
    /// <summary>Null without a dashboard; distributed mode counts transferred bytes here.</summary>
    public PrometheusExporter? Exporter { get; }
    public Uri? DashboardAddress => _server?.Address;

    public static async Task<Observability> StartAsync(CommandOptions flags, TrainingConfig config, Network network, int threads,
        CancellationToken cancellationToken, IWorkerStatusSource? workers = null, string mode = "local")
    {
        var options = DashboardOptions.FromFlags(flags);
        var loggers = DashboardLogging.Create(options.LogJson);
        var observers = new List<TrainingObserver>();
        if (options.LogJson) observers.Add(new TrainingLogObserver(loggers.CreateLogger("DistTrain.Training")));
        if (!options.Enabled) return new Observability(loggers, null, null, observers);

        var telemetry = new TrainingTelemetry(network.Groups.Select(g => g.Name).ToList(), config.Training.Epochs, options);
        workers ??= new LocalWorkerStatusSource(telemetry, threads);
        var exporter = new PrometheusExporter(telemetry, workers);
        var run = new RunInfo(mode, $"{config.Optimizer.Type} lr {config.Optimizer.LearningRate:G4}", threads,
            JsonDocument.Parse(config.ToJson()).RootElement.Clone());
        var token = Protos.Security.NodeSecurity.Create(
            Protos.Security.SecurityOptions.Read(flags.Get, Environment.GetEnvironmentVariable), "127.0.0.1", "dashboard", _ => { }).Token;
        var security = Security.DashboardSecurity.Create(options.Bind.ToString(), token);
        var server = await DashboardServer.TryStartAsync(options, telemetry, workers, exporter, run, loggers, security, cancellationToken);
        if (server is null) return new Observability(loggers, null, null, observers);
        observers.Add(new DashboardObserver(telemetry, exporter));
        return new Observability(loggers, server, exporter, observers);
    }

    /// <summary>
    /// Shows the run's end on the dashboard (<paramref name="state"/>: finished, failed or interrupted; the
    /// <paramref name="reason"/> for the last two). With <paramref name="keep"/> the dashboard then serves the final
    /// state until <paramref name="cancellationToken"/> is cancelled (Ctrl+C or SIGTERM).
    /// </summary>
    public async Task FinishAsync(string state, string? reason, bool keep, CancellationToken cancellationToken)
    {
        if (_server is null) return;
        await _server.FinishAsync(state, reason).ConfigureAwait(false);
        if (!keep || cancellationToken.IsCancellationRequested) return;
        Console.Error.WriteLine($"dashboard: the final state stays at {_server.Address} until Ctrl+C");
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null) await _server.DisposeAsync().ConfigureAwait(false);
        Loggers.Dispose(); // flushes the console logger's queue
    }
}
