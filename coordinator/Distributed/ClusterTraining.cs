// Distributed training from code: options for a DistTrain.Core.Api training run that take its gradients from gRPC
// workers (in this process, or registering from other machines) through the DistributedCluster `disttrain train` uses.
using System.Globalization;
using DistTrain.Coordinator.Cli;
using DistTrain.Coordinator.Control;
using DistTrain.Core;
using DistTrain.Core.Api;
using DistTrain.Core.Training;

namespace DistTrain.Coordinator.Distributed;

public static class ClusterTraining
{
    /// <summary>
    /// Trains on <paramref name="workers"/> in-process workers (the real worker host, over gRPC on 127.0.0.1), as
    /// `disttrain train --workers N`; the run's threads are divided among them. The weights are bit-identical to local training.
    /// </summary>
    /// <param name="options">The run's options.</param>
    /// <param name="workers">Workers to start (≥ 1).</param>
    /// <param name="log">Receives the cluster's messages (worker states); null discards them.</param>
    public static TrainingOptions InProcessWorkers(this TrainingOptions options, int workers, Action<string>? log = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(workers, 1);
        return options.Cluster(["--workers", workers.ToString(CultureInfo.InvariantCulture)], log);
    }

    /// <summary>
    /// Listens at <paramref name="listenUrl"/> (e.g. http://0.0.0.0:5100) and trains once <paramref name="expectWorkers"/>
    /// workers started with `--coordinator URL` are ready, as `disttrain train --listen URL --expect-workers N`. The token
    /// and TLS settings come from DISTTRAIN_TOKEN, DISTTRAIN_TOKEN_FILE and DISTTRAIN_TLS_*, as for the command.
    /// </summary>
    /// <param name="options">The run's options.</param>
    /// <param name="listenUrl">The http(s) URL the coordinator's gRPC server binds and workers register at.</param>
    /// <param name="expectWorkers">Workers to wait for (≥ 1).</param>
    /// <param name="log">Receives the cluster's messages (registrations, losses); null discards them.</param>
    public static TrainingOptions RemoteWorkers(this TrainingOptions options, string listenUrl, int expectWorkers,
        Action<string>? log = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(listenUrl);
        ArgumentOutOfRangeException.ThrowIfLessThan(expectWorkers, 1);
        return options.Cluster(["--listen", listenUrl, "--expect-workers", expectWorkers.ToString(CultureInfo.InvariantCulture)], log);
    }

    /// <summary>
    /// Trains on a cluster described by `disttrain train`'s distributed and security flags, e.g.
    /// ["--listen", "http://0.0.0.0:5100", "--expect-workers", "4", "--min-workers", "3", "--token-file", "token"].
    /// Unknown flags are refused here; the combination is checked when the run starts.
    /// </summary>
    /// <param name="options">The run's options.</param>
    /// <param name="flags">Flags and their values, as on the command line.</param>
    /// <param name="log">Receives the cluster's messages; null discards them.</param>
    public static TrainingOptions Cluster(this TrainingOptions options, IReadOnlyList<string> flags, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(flags);
        var parsed = CliParser.Parse("cluster", [new CliCommand("", "distributed training from code", CoordinatorOptions.Cluster)],
            [.. flags], CommandOptions.ProcessEnvironment()).Options!;
        var write = log ?? (_ => { });
        return options.GradientSource(async (context, cancellationToken) =>
        {
            var clusterOptions = ClusterOptions.FromFlags(parsed, context.Config.EffectiveThreads)
                ?? throw new UserInputException("cluster: needs --workers N, or --listen URL and --expect-workers N");
            var cluster = await DistributedCluster.StartAsync(clusterOptions, context.Config, context.Network.ParameterCount,
                context.Data, context.Fingerprint, write);
            try
            {
                await cluster.WaitForWorkersAsync(cancellationToken);
            }
            catch (Exception e)
            {
                cluster.OnRunEnded(e is OperationCanceledException && cancellationToken.IsCancellationRequested
                    ? RunOutcome.Interrupted : RunOutcome.Failed, e.Message);
                await cluster.DisposeAsync();
                throw;
            }
            return new ClusterGradientSource(cluster);
        });
    }

    /// <summary>
    /// The cluster's gradient source, owning the cluster so that the run's end stops its server and workers (remote
    /// ones are told how the run ended, as by `disttrain train`).
    /// </summary>
    private sealed class ClusterGradientSource(DistributedCluster cluster) : IGradientSource, IAsyncDisposable, IRunEndListener
    {
        public ValueTask ComputeAsync(GradientRequest request, GradientResult result, CancellationToken cancellationToken) =>
            cluster.Source.ComputeAsync(request, result, cancellationToken);

        public void OnRunEnded(RunOutcome outcome, string detail) => cluster.OnRunEnded(outcome, detail);

        public ValueTask DisposeAsync() => cluster.DisposeAsync();
    }
}
