// Distributed mode's lifetime and wiring: the control plane (ClusterStateMachine run by a ClusterDriver, ticked by a
// timer), the coordinator's gRPC server (Coordinator + grpc.health.v1) as its adapter, the preparer and the step
// transport that carry out its commands, and optional in-process workers (the real worker host on 127.0.0.1).
// Hands out the transport as the Trainer's gradient source and the driver's published view for the dashboard.
// Disposed, it tells remote workers how the run ended (EndOfRun) before its server stops.
using System.Net;
using DistTrain.Coordinator.Control;
using DistTrain.Core.Data;
using DistTrain.Core.Training;
using MessageLimits = DistTrain.Protos.MessageLimits;
using DistTrain.Protos.Security;
using DistTrain.Worker;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace DistTrain.Coordinator.Distributed;

public sealed class DistributedCluster : IAsyncDisposable
{
    private readonly WebApplication _server;
    private readonly List<WebApplication> _workers = [];
    private readonly CancellationTokenSource _stopping = new();
    private readonly WorkerConnections _connections;
    private readonly WorkerSessions _sessions;
    private readonly WorkerPreparer _preparer;
    private readonly Task _ticks;
    private readonly IBulkPlane? _bulk;
    private TcpLinkHost? _tcp;
    private readonly ClusterOptions _options;
    private readonly ClusterLog _log;
    private (RunOutcome Outcome, string Detail)? _outcome;

    private DistributedCluster(WebApplication server, ClusterDriver driver, StepTransport source, WorkerConnections connections,
        WorkerSessions sessions, WorkerPreparer preparer, IBulkPlane? bulk, ClusterOptions options, ClusterLog log, EndOfRun endOfRun)
    {
        (_server, Driver, Source, _connections, _sessions, _preparer, _bulk) = (server, driver, source, connections, sessions, preparer, bulk);
        (_options, _log, EndOfRun) = (options, log, endOfRun);
        _ticks = Task.Run(() => driver.TickEveryAsync(driver.Options.SweepInterval, _stopping.Token));
    }

    /// <summary>The control plane: post events to it, read its published view.</summary>
    public ClusterDriver Driver { get; }
    /// <summary>The Trainer's gradient source.</summary>
    public StepTransport Source { get; }
    /// <summary>The URL workers register at (the bound port when --listen asked for port 0).</summary>
    public string Address { get; private set; } = "";
    /// <summary>The run's end as workers hear it (the service answers heartbeats and registrations from it).</summary>
    public EndOfRun EndOfRun { get; }

    /// <summary>Connections the coordinator's server holds at once: workers, their health probes, operators' tools.</summary>
    public const int MaxConnections = 1024;

    /// <summary>
    /// How the run ended; the first call counts. The control plane hears it at once (the view's run state); remote
    /// workers are told when the cluster is disposed.
    /// </summary>
    public void OnRunEnded(RunOutcome outcome, string detail)
    {
        if (_outcome is not null) return;
        _outcome = (outcome, detail);
        Driver.Post(new RunEnded(outcome == RunOutcome.Finished, detail));
    }

    public static ControlOptions ControlOptionsFrom(ClusterOptions options) => new()
    {
        ExpectWorkers = options.ExpectWorkers, MinWorkers = options.MinWorkers, StartupTimeout = options.WaitTimeout,
        WaitForWorkers = options.WaitForWorkers, ComputeTimeout = options.ComputeTimeout,
        HeartbeatInterval = options.HeartbeatInterval, HeartbeatTimeout = options.HeartbeatTimeout,
        GradientOutlierFactor = options.GradientOutlierFactor,
        MaxWorkers = options.MaxWorkers, ForgetAfter = options.ForgetAfter,
    };

    public static async Task<DistributedCluster> StartAsync(ClusterOptions options, TrainingConfig config,
        int parameterCount, DataSplit data, string fingerprint, Action<string> write)
    {
        var log = new ClusterLog(write);
        var clock = new ClusterClock();
        // Slots for the most blocks a step can have: one per shard of a full batch.
        int slots = new ShardPlan(Math.Max(1, config.Training.BatchSize), config.Training.ShardSize).ShardCount;
        var bulk = BulkPlanes.Create(options, parameterCount, slots, config.Training.BatchSize, log.Write);
        TcpLinkHost? tcp = null;
        if (options.TcpLink)
        {
            try
            {
                tcp = TcpLinkHost.Create(options.Listen, options.TcpLinkPort, MessageLimits.ToOption(MessageLimits.ReplyBytes(parameterCount, slots)),
                    log.Write, options.Security.Tls?.ServerOptions());
            }
            catch
            {
                bulk?.Dispose();
                throw;
            }
        }
        string runId = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8)).ToLowerInvariant();
        var machine = new ClusterStateMachine(ControlOptionsFrom(options), runId);
        var connections = new WorkerConnections();
        var sessions = new WorkerSessions();
        ClusterDriver? driver = null;
        void Post(ClusterEvent e) => driver!.Post(e);
        var source = new StepTransport(parameterCount, connections, bulk, Post, options.WeightsTransfer);
        // Every distributed run judges its steps' split; the command decides where the notice goes (OnNotice).
        source.Traffic.Monitor = new CommunicationMonitor(config.StepOptions().Bf16Wire);
        var preparer = new WorkerPreparer(options, config, parameterCount, data, fingerprint, connections, sessions, Post, log, bulk, tcp);
        driver = new ClusterDriver(machine, () => clock.Now, source, preparer, log.Write);

        var endOfRun = new EndOfRun();
        var self = new CoordinatorSelf();
        WebApplication server;
        long weightsBytes = MessageLimits.RequestBytes(parameterCount, config.Training.BatchSize);
        try { server = await StartServerAsync(options, driver, log, endOfRun, sessions, self, source, weightsBytes); }
        catch
        {
            bulk?.Dispose();
            tcp?.Dispose();
            throw;
        }
        var cluster = new DistributedCluster(server, driver, source, connections, sessions, preparer, bulk, options, log, endOfRun) { _tcp = tcp };
        var listen = new Uri(options.Listen);
        var bound = new Uri(server.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        cluster.Address = $"{listen.Scheme}://{(listen.Host is "0.0.0.0" or "[::]" or "*" ? "127.0.0.1" : listen.Host)}:{bound.Port}";
        self.Bound(cluster.Address);
        if (options.InProcessWorkers == 0)
            log.Write($"coordinator listening on {cluster.Address}; waiting for {options.ExpectWorkers} worker(s)");
        for (int i = 0; i < options.InProcessWorkers; i++)
        {
            var args = new List<string> { "--coordinator", cluster.Address, "--threads", options.InProcessThreads.ToString() };
            if (options.CacheDir is { } cache) args.AddRange(["--cache-dir", cache]);
            var worker = WorkerHost.Build([.. args], quiet: true, options.Security);
            cluster._workers.Add(worker);
            await worker.StartAsync();
        }
        return cluster;
    }

    private static async Task<WebApplication> StartServerAsync(ClusterOptions options, ClusterDriver driver, ClusterLog log,
        EndOfRun endOfRun, WorkerSessions sessions, CoordinatorSelf self, StepTransport transport, long weightsBytes)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<IHostLifetime, Protos.EmbeddedHostLifetime>();
        var listen = new Uri(options.Listen);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            void Http2(ListenOptions o)
            {
                o.Protocols = HttpProtocols.Http2;
                options.Security.ConfigureEndpoint(o);
            }
            if (IPAddress.TryParse(listen.Host, out var ip)) kestrel.Listen(ip, listen.Port, Http2);
            else if (listen.Host == "localhost") kestrel.ListenLocalhost(listen.Port, Http2);
            else kestrel.ListenAnyIP(listen.Port, Http2);
            // Only tiny Register/Heartbeat messages arrive here; gRPC's 64 KiB message limit below refuses a larger one
            // from its 5-byte prefix (ResourceExhausted). This body cap is a backstop kept above HTTP/2's initial stream
            // window (768 KiB), so the window holds a fast sender back until gRPC has read the prefix and answered.
            kestrel.Limits.MaxRequestBodySize = 1 << 20;
            ServerLimits.Apply(kestrel, MaxConnections, maxStreamsPerConnection: 100);
        });
        builder.Services.AddSingleton<HealthWatchLimit>();
        builder.Services.AddSingleton(driver).AddSingleton(log).AddSingleton(endOfRun).AddSingleton(sessions).AddSingleton(self)
            .AddSingleton(transport);
        builder.Services.AddGrpc(grpc =>
        {
            grpc.MaxReceiveMessageSize = 64 * 1024;
            // FetchWeights answers with a step's weights.
            grpc.MaxSendMessageSize = MessageLimits.ToOption(Math.Max(64 * 1024, weightsBytes));
            grpc.Interceptors.Add<HealthWatchLimit>();
        });
        builder.Services.AddGrpcHealthChecks().AddCheck("coordinator", () =>
            Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult.Healthy());
        var server = builder.Build();
        options.Security.Protect(server, log.Write);
        server.MapGrpcService<CoordinatorService>();
        server.MapGrpcHealthChecksService();
        try { await server.StartAsync(); }
        catch (IOException e)
        {
            await server.DisposeAsync();
            throw new Core.UserInputException($"train: cannot listen on {options.Listen}: {e.Message}");
        }
        return server;
    }

    /// <summary>
    /// The start-up wait: returns once the machine says training may start (see StartupWait); throws
    /// WorkersUnavailableException when too few workers are ready.
    /// </summary>
    public Task WaitForWorkersAsync(CancellationToken cancellationToken) => Driver.StartTrainingAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        _stopping.Cancel();
        // Workers waiting for the next step's weights hear at once that none comes.
        Source.Close();
        foreach (var worker in _workers)
        {
            using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
                try { await worker.StopAsync(stop.Token); } catch (OperationCanceledException) { }
            await worker.DisposeAsync();
        }
        await _ticks;
        await _preparer.DisposeAsync();
        // Remote workers hear how the run ended while the server still answers their heartbeats; in-process workers
        // were this process's own and are stopped above.
        if (_options.InProcessWorkers == 0)
        {
            var (outcome, detail) = _outcome ?? (RunOutcome.Failed, "the coordinator stopped before the run ended");
            var workers = Driver.View.Workers.Select(w => new EndOfRun.Recipient(w.Id, w.Address, w.State != WorkerState.Lost)).ToList();
            _log.Write(await EndOfRun.AnnounceAsync(EndOfRun.NoticeOf(outcome, detail), Driver.RunId, workers,
                EndOfRun.OverGrpc(_options.Security, _sessions), linger: 2 * Driver.Options.HeartbeatInterval + TimeSpan.FromSeconds(0.5)));
        }
        using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
            try { await _server.StopAsync(stop.Token); } catch (OperationCanceledException) { }
        await _server.DisposeAsync();
        _connections.Dispose();
        _bulk?.Dispose();
        _tcp?.Dispose();
        _stopping.Dispose();
    }
}
