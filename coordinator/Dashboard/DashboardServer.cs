// Kestrel inside the train process: the page, /api/status, /api/metrics, /api/events (Server-Sent Events pushed by
// one publisher task at most every PushInterval) and /metrics. It never calls into training; it only reads snapshots.
using System.Text.Json;
using DistTrain.Coordinator.Control;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Prometheus;

namespace DistTrain.Coordinator.Dashboard;

/// <summary>What does not change during a run: shown in the summary panel.</summary>
public sealed record RunInfo(string Mode, string Optimizer, int Threads, JsonElement Config);

/// <summary>The control plane's view of the run (the workers are listed beside it).</summary>
public sealed record ClusterStatus(RunState Run, string Phase, long Step, int Attempt, double MedianStepSeconds)
{
    public static ClusterStatus Of(ClusterView view) => new(view.Run, view.Phase, view.Step, view.Attempt, view.MedianStepSeconds);
}

public sealed record StatusResponse(RunInfo Run, TelemetrySnapshot Training, ClusterStatus Cluster, IReadOnlyList<WorkerView> Workers,
    double VanishingBelow, double ExplodingAbove, int EventClients);

public sealed class DashboardServer : IAsyncDisposable
{
    private static readonly TimeSpan KeepAlive = TimeSpan.FromSeconds(5);
    private readonly WebApplication _app;
    private readonly DashboardOptions _options;
    private readonly TrainingTelemetry _telemetry;
    private readonly IWorkerStatusSource _workers;
    private readonly RunInfo _run;
    private readonly EventStreamHub _hub;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly HashSet<(GradientAlertKind, string)> _loggedAlerts = [];
    private Task _publisher = Task.CompletedTask;

    private DashboardServer(WebApplication app, DashboardOptions options, TrainingTelemetry telemetry, IWorkerStatusSource workers,
        RunInfo run, ILogger log)
    {
        (_app, _options, _telemetry, _workers, _run, _log) = (app, options, telemetry, workers, run, log);
        _hub = new EventStreamHub(options.MaxEventClients);
    }

    public Uri Address { get; private set; } = new("http://127.0.0.1/");

    /// <summary>Starts serving; returns null (and logs why) when the address cannot be bound, so training goes on.</summary>
    public static async Task<DashboardServer?> TryStartAsync(DashboardOptions options, TrainingTelemetry telemetry,
        IWorkerStatusSource workers, PrometheusExporter exporter, RunInfo run, ILoggerFactory loggers,
        Security.DashboardSecurity security, CancellationToken cancellationToken)
    {
        var log = loggers.CreateLogger("DistTrain.Dashboard");
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ApplicationName = "disttrain" });
        builder.Services.Replace(ServiceDescriptor.Singleton(loggers));
        // The train command owns Ctrl+C and SIGTERM; the web host must not take them over.
        builder.Services.AddSingleton<IHostLifetime, Protos.EmbeddedHostLifetime>();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(2));
        builder.Services.AddRoutingCore();
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestLineSize = 8 * 1024;           // a 100 KB query string gets 414
            k.Limits.MaxRequestHeadersTotalSize = 32 * 1024;  // huge headers get 431
            k.Limits.MaxRequestBodySize = 64 * 1024;
            k.Limits.MaxConcurrentConnections = options.MaxEventClients + 100;
            // A socket that sends no complete request within seconds is closed, so slow sockets cannot hold every slot.
            k.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(3);
            k.Limits.KeepAliveTimeout = TimeSpan.FromSeconds(30);
            k.Listen(options.Bind, options.Port);
        });
        var app = builder.Build();
        // Off loopback the dashboard is read-only and, beyond the status page, needs the deployment's token.
        app.Use(async (context, next) =>
        {
            var access = security.Decide(context.Request.Method, context.Request.Path.Value ?? "/", context.Request.Headers.Authorization,
                context.Request.Headers.Host);
            if (access == Security.DashboardAccess.Allowed)
            {
                await next(context);
                return;
            }
            context.Response.StatusCode = Security.DashboardSecurity.StatusCode(access);
            if (access == Security.DashboardAccess.Unauthorized) context.Response.Headers.WWWAuthenticate = "Bearer";
        });
        var server = new DashboardServer(app, options, telemetry, workers, run, log);
        server.MapRoutes(exporter);
        try
        {
            await app.StartAsync(cancellationToken);
        }
        catch (IOException e)
        {
            log.LogWarning("dashboard: cannot listen on {Address}:{Port} ({Reason}); training continues without it",
                options.Bind, options.Port, e.Message);
            await app.DisposeAsync();
            return null;
        }
        server.WarmUp(exporter);
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.Address = new Uri(address.Replace("[::]", "[::1]").Replace("0.0.0.0", "127.0.0.1") + "/");
        server._publisher = Task.Run(() => server.PublishAsync(server._stop.Token), CancellationToken.None);
        log.LogInformation("dashboard: {Url}", server.Address);
        return server;
    }

    private void MapRoutes(PrometheusExporter exporter)
    {
        var assets = new StaticAssets();
        _app.MapGet("/", (HttpContext c) => assets.Serve(c, "index.html"));
        _app.MapGet("/{file}", (HttpContext c, string file) => assets.Serve(c, file));
        _app.MapGet("/api/status", () => Results.Json(Status(), DashboardJson.Options));
        _app.MapGet("/api/metrics", (int? from) => Results.Json(new
        {
            Steps = _telemetry.StepHistory(from ?? 0),
            Epochs = _telemetry.EpochHistory(),
        }, DashboardJson.Options));
        _app.MapGet("/api/events", StreamEventsAsync);
        _app.MapGet("/healthz", () => Results.Text("serving\n"));
        _app.MapMetrics("/metrics", exporter.Registry);
    }

    // The first serialization of each response type costs JIT and reflection work; done here, before training
    // starts, it does not land in the first epoch's time.
    private void WarmUp(PrometheusExporter exporter)
    {
        _ = JsonSerializer.Serialize(new { Status = Status(), Points = _telemetry.StepHistory() }, DashboardJson.Options);
        _ = JsonSerializer.Serialize(new { Steps = _telemetry.StepHistory(), Epochs = _telemetry.EpochHistory() }, DashboardJson.Options);
        exporter.Registry.CollectAndExportAsTextAsync(Stream.Null).GetAwaiter().GetResult();
    }

    private StatusResponse Status()
    {
        var view = _workers.Snapshot();
        // After the run nothing is busy or lost any more: every worker's part is done.
        var workers = _telemetry.Ended ? [.. view.Workers.Select(w => w with { State = WorkerState.Done })] : view.Workers;
        return new(_run, _telemetry.Snapshot(), ClusterStatus.Of(view), workers, _options.VanishingBelow, _options.ExplodingAbove,
            _hub.ClientCount);
    }

    /// <summary>
    /// Ends the run on the dashboard: the final state goes to every page at once, then their streams close (a page
    /// that sees the end stops listening instead of reconnecting). The page and the APIs keep answering until disposed.
    /// </summary>
    public async Task FinishAsync(string state, string? reason)
    {
        _telemetry.End(state, reason);
        _stop.Cancel();
        await _publisher.ConfigureAwait(false);
        var status = Status();
        LogNewAlerts(status.Training);
        _hub.Broadcast(Frame(JsonSerializer.Serialize(new { Status = status, Points = _telemetry.StepHistory(int.MaxValue) }, DashboardJson.Options)));
        _hub.CloseAll();
    }

    private async Task StreamEventsAsync(HttpContext context)
    {
        using var subscription = _hub.TryJoin();
        if (subscription is null)
        {
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            context.Response.Headers.RetryAfter = "5";
            await context.Response.WriteAsync($"at most {_hub.MaxClients} live clients\n");
            return;
        }
        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        var aborted = context.RequestAborted;
        try
        {
            // The first event right away, so a new page need not wait for the next change.
            await response.WriteAsync("retry: 2000\n\n" + Frame(JsonSerializer.Serialize(new { Status = Status() }, DashboardJson.Options)), aborted);
            await response.Body.FlushAsync(aborted);
            await foreach (string frame in subscription.Reader.ReadAllAsync(aborted))
            {
                await response.WriteAsync(frame, aborted);
                await response.Body.FlushAsync(aborted);
            }
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            // The browser went away.
        }
        catch (IOException)
        {
            // The connection broke mid-write.
        }
    }

    private static string Frame(string json) => "data: " + json + "\n\n";

    /// <summary>What a page shows of the workers that is worth a push of its own: run, states, health, errors.</summary>
    private static string WorkersSignature(ClusterView view) =>
        string.Join(";", view.Workers.Select(w => $"{w.Id}#{w.Generation} {w.State} {w.Health} {w.Errors}").Prepend(view.Run.ToString()));

    private async Task PublishAsync(CancellationToken cancellationToken)
    {
        long lastVersion = -1, lastGeneration = -1;
        string lastWorkers = "";
        int lastCount = 0;
        DateTime lastPush = DateTime.MinValue;
        using var timer = new PeriodicTimer(_options.PushInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                try
                {
                    long version = _telemetry.Version;
                    // The workers change without the training moving (a hung worker holds the step up): watch both.
                    string workers = WorkersSignature(_workers.Snapshot());
                    bool keepAlive = DateTime.UtcNow - lastPush > KeepAlive;
                    if (version == lastVersion && workers == lastWorkers && !keepAlive) continue;
                    (lastVersion, lastWorkers) = (version, workers);
                    var status = Status();
                    LogNewAlerts(status.Training);
                    if (_hub.ClientCount == 0) continue;
                    // New step points since the last push; after a compaction, none: the new generation tells the
                    // pages to refetch /api/metrics.
                    var points = _telemetry.StepHistory(lastCount);
                    if (points.Generation != lastGeneration) points = _telemetry.StepHistory(int.MaxValue);
                    (lastGeneration, lastCount) = (points.Generation, points.From + points.Steps.Length);
                    _hub.Broadcast(Frame(JsonSerializer.Serialize(new { Status = status, Points = points }, DashboardJson.Options)));
                    lastPush = DateTime.UtcNow;
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    _log.LogError(e, "dashboard: publishing an update failed");
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    // Alerts go to the log once per (kind, layer), off the training thread.
    private void LogNewAlerts(TelemetrySnapshot training)
    {
        foreach (var alert in training.Alerts)
            if (_loggedAlerts.Add((alert.Kind, alert.Layer)))
                _log.LogWarning("gradient alert {Kind} {Layer} at step {Step}: {Message}", alert.Kind, alert.Layer, alert.FirstStep, alert.Message);
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _hub.CloseAll();
        await _publisher.ConfigureAwait(false);
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2)))
            await _app.StopAsync(timeout.Token).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        _stop.Dispose();
    }
}
