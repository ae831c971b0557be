// Distributed mode's lifetime: the coordinator's gRPC server (Coordinator + grpc.health.v1), the heartbeat tick and
// the preparer loops, optional in-process workers (the real worker host on 127.0.0.1), and the wait for enough
// ready workers. Hands out the RemoteGradientSource the Trainer uses. Disposed, it tells remote workers how the run
// ended (EndOfRun) before its server stops.
using System.Net;
using DistTrain.Core.Data;
using DistTrain.Core.Training;
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

public sealed class DistributedCluster : IAsyncDisposable, IRunEndListener
{
    private readonly WebApplication _server;
    private readonly List<WebApplication> _workers = [];
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _loops = [];
    private readonly ClusterOptions _options;
    private readonly ClusterLog _log;
    private SharedMemoryHost? _shared;
    private (RunOutcome Outcome, string Detail)? _outcome;

    private DistributedCluster(WebApplication server, WorkerRegistry registry, ClusterOptions options, ClusterLog log,
        RemoteGradientSource source)
    {
        _server = server;
        Registry = registry;
        _options = options;
        _log = log;
        Source = source;
    }

    public WorkerRegistry Registry { get; }
    /// <summary>The clock heartbeats and registrations are stamped with.</summary>
    public ClusterClock Clock { get; private init; } = new();
    public RemoteGradientSource Source { get; }
    /// <summary>The URL workers register at (the bound port when --listen asked for port 0).</summary>
    public string Address { get; private set; } = "";
    /// <summary>The run's end as workers hear it (the service answers heartbeats from it).</summary>
    public EndOfRun EndOfRun { get; private init; } = new();

    /// <summary>How the run ended; the first call counts. Remote workers are told when the cluster is disposed.</summary>
    public void OnRunEnded(RunOutcome outcome, string detail) => _outcome ??= (outcome, detail);

    /// <summary>Connections the coordinator's server holds at once: workers, their health probes, operators' tools.</summary>
    public const int MaxConnections = 1024;

    public static async Task<DistributedCluster> StartAsync(ClusterOptions options, TrainingConfig config,
        int parameterCount, DataSplit data, string fingerprint, Action<string> write)
    {
        var log = new ClusterLog(write);
        var clock = new ClusterClock();
        var registry = new WorkerRegistry(options.HeartbeatInterval, options.HeartbeatTimeout);
        var endOfRun = new EndOfRun();
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
        builder.Services.AddSingleton(registry).AddSingleton(clock).AddSingleton(log).AddSingleton(endOfRun);
        builder.Services.AddGrpc(grpc =>
        {
            grpc.MaxReceiveMessageSize = 64 * 1024;
            grpc.MaxSendMessageSize = 64 * 1024;
            grpc.Interceptors.Add<HealthWatchLimit>();
        });
        builder.Services.AddGrpcHealthChecks().AddCheck("coordinator", () =>
            Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult.Healthy());
        var server = builder.Build();
        options.Security.Protect(server, log.Write);
        server.MapGrpcService<CoordinatorService>();
        server.MapGrpcHealthChecksService();
        try { await server.StartAsync(); }
        catch (IOException e) { throw new Core.UserInputException($"train: cannot listen on {options.Listen}: {e.Message}"); }

        // Slots for the most blocks a step can have: one per shard of a full batch.
        int slots = new ShardPlan(Math.Max(1, config.Training.BatchSize), config.Training.ShardSize).ShardCount;
        SharedMemoryHost? shared;
        try
        {
            shared = options.SharedMemoryRoot is { } root
                ? SharedMemoryHost.Create(root, parameterCount, slots, log.Write, options.BindCpus, indexCapacity: Math.Max(1, config.Training.BatchSize))
                : null;
        }
        catch (Protos.SharedMemoryException e)
        {
            log.Write($"same-host transport off ({e.Message}); every worker gets weights and gradients over gRPC");
            shared = null;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
        var source = new RemoteGradientSource(parameterCount, registry, options.ComputeTimeout, write,
            new WorkerWait(registry, options.WaitForWorkers, TimeSpan.FromSeconds(2), write), shared?.Weights);
        var cluster = new DistributedCluster(server, registry, options, log, source) { Clock = clock, EndOfRun = endOfRun, _shared = shared };
        var bound = new Uri(server.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        cluster.Address = $"{listen.Scheme}://{(listen.Host is "0.0.0.0" or "[::]" or "*" ? "127.0.0.1" : listen.Host)}:{bound.Port}";
        var preparer = new WorkerPreparer(registry, options, config, parameterCount, data, fingerprint, log, shared);
        cluster._loops.Add(Task.Run(() => preparer.RunAsync(cluster._stopping.Token)));
        cluster._loops.Add(Task.Run(() => cluster.TickAsync(clock)));
        if (options.InProcessWorkers == 0)
            log.Write($"coordinator listening on {cluster.Address}; waiting for {options.ExpectWorkers} worker(s)");
        for (int i = 0; i < options.InProcessWorkers; i++)
        {
            var args = new List<string> { "--coordinator", cluster.Address, "--threads", options.InProcessThreads.ToString() };
            if (options.CacheDir is { } cache) args.AddRange(["--cache-dir", cache]);
            var worker = WorkerHost.Build([.. args], quiet: true, options.Security, embedded: true);
            cluster._workers.Add(worker);
            await worker.StartAsync();
        }
        return cluster;
    }

    /// <summary>
    /// Waits until the expected workers are ready; settles for --min-workers once every expected worker has
    /// answered (ready or refused) or the wait times out. Throws WorkersUnavailableException when too few are ready.
    /// </summary>
    public async Task WaitForWorkersAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.WaitTimeout);
        while (true)
        {
            var changed = Registry.WaitForChangeAsync(timeout.Token);
            var all = Registry.Snapshot();
            int ready = all.Count(w => w.State == WorkerState.Ready);
            bool settled = all.Count(w => w.State is WorkerState.Ready or WorkerState.Refused) >= _options.ExpectWorkers
                && !all.Any(w => w.State is WorkerState.Registered or WorkerState.Preparing);
            if (ready >= _options.ExpectWorkers || (settled && ready >= _options.MinWorkers))
            {
                _log.Write($"{ready} worker(s) ready; training");
                return;
            }
            if (settled) throw TooFew(all, ready, "every expected worker has answered");
            try { await changed; }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                all = Registry.Snapshot();
                ready = all.Count(w => w.State == WorkerState.Ready);
                if (ready >= _options.MinWorkers)
                {
                    _log.Write($"{ready} worker(s) ready after {_options.WaitTimeout.TotalSeconds:F0}s; training with them");
                    return;
                }
                throw TooFew(all, ready, $"waited {_options.WaitTimeout.TotalSeconds:F0}s");
            }
        }
    }

    private WorkersUnavailableException TooFew(IReadOnlyList<WorkerEntry> all, int ready, string why)
    {
        var refused = all.Where(w => w.State == WorkerState.Refused).Select(w => $"{w.Id} refused: {w.Reason}");
        string detail = string.Join("; ", refused);
        return new WorkersUnavailableException(
            $"only {ready} of {_options.ExpectWorkers} worker(s) ready (need {_options.MinWorkers}; {why})" +
            (detail.Length > 0 ? $" — {detail}" : ""));
    }

    private async Task TickAsync(ClusterClock clock)
    {
        try
        {
            while (!_stopping.IsCancellationRequested)
            {
                await Task.Delay(_options.HeartbeatInterval, _stopping.Token);
                foreach (var lost in Registry.Tick(clock.Now)) _log.Write($"worker {lost.Id} ({lost.Address}) lost: {lost.Reason}");
            }
        }
        catch (OperationCanceledException) { }
    }

    public async ValueTask DisposeAsync()
    {
        _stopping.Cancel();
        foreach (var worker in _workers)
        {
            using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
                try { await worker.StopAsync(stop.Token); } catch (OperationCanceledException) { }
            await worker.DisposeAsync();
        }
        await Task.WhenAll(_loops);
        // Remote workers hear how the run ended while the server still answers their heartbeats; in-process workers
        // were this process's own and are stopped above.
        if (_options.InProcessWorkers == 0)
        {
            var (outcome, detail) = _outcome ?? (RunOutcome.Failed, "the coordinator stopped before the run ended");
            var workers = Registry.Snapshot().Select(w => new EndOfRun.Recipient(w.Id, w.Address, w.State != WorkerState.Lost)).ToList();
            _log.Write(await EndOfRun.AnnounceAsync(EndOfRun.NoticeOf(outcome, detail), Registry.RunId, workers,
                EndOfRun.OverGrpc(_options.Security), linger: 2 * Registry.HeartbeatInterval + TimeSpan.FromSeconds(0.5)));
        }
        using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
            try { await _server.StopAsync(stop.Token); } catch (OperationCanceledException) { }
        await _server.DisposeAsync();
        _shared?.Dispose();
        _stopping.Dispose();
    }
}
