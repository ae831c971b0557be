// `disttrain train`: loads the config and data, builds the gradient source (in-process threads for local mode,
// gRPC workers for --listen/--expect-workers or --workers), runs the Trainer with the console, metrics-file and step-log reporters, and saves the final weights.
// Exit codes: 0 finished, 1 failed (no workers left, non-finite gradients), 2 a user error, 130/143 SIGINT/SIGTERM.
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
    /// <summary>Trains; a signal ends the run in order (checkpoint, workers told) with one line and 130 or 143.</summary>
    public static async Task<int> RunAsync(CommandOptions flags, Interruption interruption)
    {
        var progress = new RunProgress();
        try
        {
            return await TrainAsync(flags, progress, interruption);
        }
        catch (OperationCanceledException) when (interruption.Requested)
        {
            // Last, after the cluster told its workers: the run's final word.
            Console.Error.WriteLine(progress.DescribeInterruption(interruption.SignalName));
            return interruption.ExitCode;
        }
    }

    private static async Task<int> TrainAsync(CommandOptions flags, RunProgress progress, Interruption interruption)
    {
        var cancellationToken = interruption.Token;
        var config = ConfigLoader.Load(flags.Require("--config"), flags);
        var run = config.Training;
        progress.CheckpointDir = run.CheckpointDir;
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
        Console.Error.WriteLine(network.Describe());
        // Loading does not watch the token: a signal that came meanwhile stops the run here, before anything starts.
        cancellationToken.ThrowIfCancellationRequested();

        bool resuming = run.Resume && Checkpoint.List(run.CheckpointDir!).Count > 0;
        var observers = new List<TrainingObserver> { progress };
        bool quiet = flags.Has("--quiet");
        observers.Add(new ConsoleReporter(Console.Out, Console.Error, progressBar: !quiet && !Console.IsErrorRedirected));
        using var metrics = run.MetricsOut is { Length: > 0 } m ? new MetricsFileWriter(m, append: resuming) : null;
        using var stepLog = run.StepLog is { Length: > 0 } s ? new StepLogWriter(s, append: resuming) : null;
        if (metrics is not null) observers.Add(metrics);
        if (stepLog is not null) observers.Add(stepLog);

        var clusterOptions = ClusterOptions.FromFlags(flags, threads);
        if (clusterOptions is not null) progress.Phase = "starting the cluster";
        await using var cluster = clusterOptions is null ? null
            : await DistributedCluster.StartAsync(clusterOptions, config, network.ParameterCount, data, fingerprint,
                message => Console.Error.WriteLine(message));
        // However the run ends, the cluster's remote workers hear how when it is disposed (EndOfRun).
        try
        {
            await using var observability = await Observability.StartAsync(flags, config, network, threads, cancellationToken,
                cluster is null ? null : new ClusterStatusSource(cluster.Driver),
                cluster is null ? "local" : "distributed");
            observers.AddRange(observability.Observers);
            if (cluster is not null)
            {
                // The communication-bound notice goes to the log and the dashboard's messages, like the trainer's own.
                cluster.Source.Traffic.OnNotice = new CompositeObserver(observers.ToList()).OnMessage;
            }
            if (cluster is not null && observability.Exporter is { } exporter)
                cluster.Source.Traffic.OnTraffic = (sent, received) =>
                {
                    exporter.AddBytesSent(sent);
                    exporter.AddBytesReceived(received);
                };
            using var local = cluster is null ? new LocalGradientSource(network, data.Train, threads) : null;
            IGradientSource source = (IGradientSource?)local ?? cluster!.Source;
            bool keepDashboard = flags.Has("--keep-dashboard");
            try
            {
                if (cluster is not null)
                {
                    Console.Error.WriteLine($"distributed: {clusterOptions}");
                    progress.Phase = "waiting for workers";
                    await cluster.WaitForWorkersAsync(cancellationToken);
                }
                progress.Phase = "preparing to train";
                var trainer = new Trainer(config, network, data, fingerprint, source, new CompositeObserver(observers));
                var weights = await trainer.RunAsync(cancellationToken);
                if (run.Save is { Length: > 0 } save)
                {
                    WeightsFile.Save(save, network, weights, WeightsFile.TrainedMetadata(config.Model, fingerprint, preprocessing));
                    Console.Error.WriteLine($"saved weights to {save}");
                }
            }
            catch (Exception e) when (e is NonFiniteGradientException or WorkersUnavailableException)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                await observability.FinishAsync("failed", e.Message, keepDashboard, cancellationToken);
                throw;
            }
            catch (OperationCanceledException) when (interruption.Requested)
            {
                await observability.FinishAsync("interrupted", $"stopped by {interruption.SignalName}", keep: false, CancellationToken.None);
                throw;
            }
            cluster?.OnRunEnded(RunOutcome.Finished, "");
            await observability.FinishAsync("finished", null, keepDashboard, cancellationToken);
            return 0;
        }
        catch (Exception e) when (e is NonFiniteGradientException or WorkersUnavailableException)
        {
            cluster?.OnRunEnded(RunOutcome.Failed, e.Message);
            return 1;
        }
        catch (Exception e)
        {
            bool interrupted = e is OperationCanceledException && interruption.Requested;
            cluster?.OnRunEnded(interrupted ? RunOutcome.Interrupted : RunOutcome.Failed, interrupted ? interruption.SignalName : e.Message);
            throw;
        }
    }
}
