// `disttrain train`: loads the config and data, builds the gradient source (in-process threads for local mode,
// gRPC workers for --listen/--expect-workers or --workers), runs the Trainer with the console, metrics-file and step-log reporters, and saves the final weights.
using System.Diagnostics;
using DistTrain.Coordinator.Control;
using DistTrain.Coordinator.Distributed;
using DistTrain.Coordinator.Dashboard;
using DistTrain.Coordinator.Reporting;
using DistTrain.Core.Data;
using DistTrain.Core.Model;
using DistTrain.Core.Training;

namespace DistTrain.Coordinator.Cli;

public static class TrainCommand
{
    public static async Task<int> RunAsync(CommandOptions flags, CancellationToken cancellationToken)
    {
        var config = ConfigLoader.Load(flags.Require("--config"), flags);
        var network = new Network(config.Model);
        var clock = Stopwatch.StartNew();
        var data = DataLoader.Load(config.Data, out var preprocessing);
        string fingerprint = Fingerprint.Compute(data);
        int threads = config.EffectiveThreads;
        Console.Error.WriteLine(
            $"data: {data.Train.Count} training samples" + (data.Test is { } t ? $", {t.Count} test samples" : "") +
            $" of {data.Train.Width} features ({data.Train.Source}) loaded in {clock.Elapsed.TotalSeconds:F1}s; fingerprint {fingerprint[..Math.Min(16, fingerprint.Length)]}");
        Console.Error.WriteLine($"model: {network.Spec.Describe()}, {network.ParameterCount:N0} parameters; " +
            $"optimizer {config.Optimizer.Type} lr {config.Optimizer.LearningRate}; batch {config.Training.BatchSize}, shard {config.Training.ShardSize}; {threads} thread(s)");

        var run = config.Training;
        bool resuming = run.Resume && Checkpoint.List(run.CheckpointDir!).Count > 0;
        var observers = new List<TrainingObserver>();
        bool quiet = flags.Has("--quiet");
        observers.Add(new ConsoleReporter(Console.Out, Console.Error, progressBar: !quiet && !Console.IsErrorRedirected));
        using var metrics = run.MetricsOut is { Length: > 0 } m ? new MetricsFileWriter(m, append: resuming) : null;
        using var stepLog = run.StepLog is { Length: > 0 } s ? new StepLogWriter(s, append: resuming) : null;
        if (metrics is not null) observers.Add(metrics);
        if (stepLog is not null) observers.Add(stepLog);

        var clusterOptions = ClusterOptions.FromFlags(flags, threads);
        await using var cluster = clusterOptions is null ? null
            : await DistributedCluster.StartAsync(clusterOptions, config, network.ParameterCount, data, fingerprint,
                message => Console.Error.WriteLine(message));
        await using var observability = await Observability.StartAsync(flags, config, network, threads, cancellationToken,
            cluster is null ? null : new ClusterStatusSource(cluster.Driver),
            cluster is null ? "local" : "distributed");
        observers.AddRange(observability.Observers);
        if (cluster is not null && observability.Exporter is { } exporter)
            cluster.Source.Traffic.OnTraffic = (sent, received) =>
            {
                exporter.AddBytesSent(sent);
                exporter.AddBytesReceived(received);
            };
        using var local = cluster is null ? new LocalGradientSource(network, data.Train, threads) : null;
        IGradientSource source = (IGradientSource?)local ?? cluster!.Source;
        float[] weights;
        try
        {
            if (cluster is not null)
            {
                Console.Error.WriteLine($"distributed: {clusterOptions}");
                await cluster.WaitForWorkersAsync(cancellationToken);
            }
            var trainer = new Trainer(config, network, data, fingerprint, source, new CompositeObserver(observers));
            weights = await trainer.RunAsync(cancellationToken);
            cluster?.Finish(completed: true);
        }
        catch (Exception e) when (e is NonFiniteGradientException or WorkersUnavailableException)
        {
            cluster?.Finish(completed: false, e.Message);
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
        if (run.Save is { Length: > 0 } save)
        {
            WeightsFile.Save(save, network, weights, WeightsFile.TrainedMetadata(config.Model, fingerprint, preprocessing));
            Console.Error.WriteLine($"saved weights to {save}");
        }
        return 0;
    }
}
