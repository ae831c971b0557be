// `disttrain bench-distributed`: trains with distributed workers (same flags as train) and reports samples/s, the
// distribution of step times, bytes sent and received per step per worker, and the share of step time spent
// waiting on anything but the slowest worker's compute (transfer, serialization, scheduling).
using System.Globalization;
using DistTrain.Coordinator.Control;
using DistTrain.Coordinator.Distributed;
using DistTrain.Coordinator.Reporting;
using DistTrain.Core;
using DistTrain.Core.Data;
using DistTrain.Core.Model;
using DistTrain.Core.Training;

namespace DistTrain.Coordinator.Cli;

public static class DistributedBench
{
    private sealed class StepTimer : TrainingObserver
    {
        public long Samples { get; private set; }
        /// <summary>The measured steps (after the warm-up epoch).</summary>
        public StepTimes Times { get; } = new();
        public double Seconds => Times.Total;
        public int Steps => Times.Count;
        public bool SkipWarmup { get; init; }
        public TrafficStats? Traffic { get; init; }
        public double WaitBaseline { get; private set; }

        public override void OnStep(in StepReport report)
        {
            // Epoch 1 is warm-up (JIT, first touch of buffers on every node), as in `disttrain bench`.
            if (report.Epoch == 0 && report.BatchesPerEpoch > 0 && SkipWarmup)
            {
                // The traffic totals include every step; remember where the measured steps start.
                WaitBaseline = Traffic?.NetworkWaitSeconds ?? 0;
                return;
            }
            Times.Add(report.Seconds);
            Samples += report.Outcome.Samples;
        }
    }

    public static async Task<int> RunAsync(CommandOptions flags, CancellationToken cancellationToken)
    {
        var config = ConfigLoader.Load(flags.Require("--config"), flags);
        var options = ClusterOptions.FromFlags(flags, config.EffectiveThreads)
            ?? throw new UserInputException("bench-distributed: needs --workers N or --listen URL --expect-workers N");
        var network = new Network(config.Model);
        var data = DataLoader.Load(config.Data);
        string fingerprint = Fingerprint.Compute(data);
        await using var cluster = await DistributedCluster.StartAsync(options, config, network.ParameterCount, data,
            fingerprint, message => Console.Error.WriteLine(message));
        var timer = new StepTimer { SkipWarmup = config.Training.Epochs > 1, Traffic = cluster.Source.Traffic };
        cluster.Source.Traffic.OnNotice = message => Console.Error.WriteLine($"notice: {message}");
        try
        {
            await cluster.WaitForWorkersAsync(cancellationToken);
            // Training only, as in `disttrain bench`: no test-set evaluation between epochs (it is not counted in the
            // step time, but it takes both cores from the workers and leaves their caches cold for the next step).
            await new Trainer(config, network, new DataSplit(data.Train, null), fingerprint, cluster.Source, timer).RunAsync(cancellationToken);
            cluster.OnRunEnded(RunOutcome.Finished, "");
        }
        catch (WorkersUnavailableException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            cluster.OnRunEnded(RunOutcome.Failed, e.Message);
            return 1;
        }
        catch (Exception e)
        {
            // Remote workers hear how the run ended when the cluster is disposed.
            cluster.OnRunEnded(e is OperationCanceledException && cancellationToken.IsCancellationRequested
                ? RunOutcome.Interrupted : RunOutcome.Failed, e.Message);
            throw;
        }
        var traffic = cluster.Source.Traffic;
        var c = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(c,
            $"distributed ({options}): {(timer.SkipWarmup ? "after a warm-up epoch, " : "")}{timer.Steps} steps, {timer.Samples} samples in {timer.Seconds:F2}s of steps = {timer.Samples / timer.Seconds:F0} samples/s"));
        Console.WriteLine(timer.Times.Describe());
        Console.WriteLine(string.Create(c,
            $"model {network.ParameterCount:N0} parameters; 4 × parameters = {4.0 * network.ParameterCount / 1024:F1} KiB"));
        var shared = traffic.SharedPerWorker();
        foreach (var (worker, (sent, received, requests)) in traffic.PerWorker().OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            var (sharedSent, sharedReceived) = shared.GetValueOrDefault(worker);
            string viaShared = sharedSent + sharedReceived == 0 ? ""
                : $"; through shared memory: weights and indices {PerStep(sharedSent)}, gradients {PerStep(sharedReceived)}";
            Console.WriteLine($"  {worker}: {requests} requests; per step in messages sent {PerStep(sent)}, received {PerStep(received)}{viaShared}");
        }
        if (cluster.Source.WeightsFetches is { All: > 0 } fetches)
            Console.WriteLine(string.Create(c,
                $"weights fetched by the workers: {fetches.All}, {100.0 * fetches.Early / fetches.All:F1}% of them early (asked for before their step began)"));
        Console.WriteLine(string.Create(c,
            $"network wait: {traffic.NetworkWaitSeconds - timer.WaitBaseline:F2}s of {timer.Seconds:F2}s step time = {100 * (traffic.NetworkWaitSeconds - timer.WaitBaseline) / timer.Seconds:F1}%"));
        return 0;

        // Bytes per step: whole bytes below 1 KiB (a same-host request is a few dozen), else KiB.
        string PerStep(long total)
        {
            double bytes = total / (double)Math.Max(1, traffic.Steps);
            return bytes < 1024 ? string.Create(c, $"{bytes:F0} B") : string.Create(c, $"{bytes / 1024:F1} KiB");
        }
    }
}
