// Classifies a worker from what was last heard of it: a pure function of timestamps and latencies, so the rules
// (heartbeat silence → Lost, far slower than its peers → Slow) are unit-tested without processes or clocks.
namespace DistTrain.Coordinator.Dashboard;

/// <summary>The observations a worker state is derived from; times in seconds on one monotonic clock.</summary>
public readonly record struct WorkerObservation(
    double LastHeartbeat, bool Assigned, bool Rejoining, double LastStepLatency);

public sealed record WorkerHealthOptions
{
    /// <summary>Heartbeat silence after which a worker counts as lost (the SIGKILL test allows 5 s).</summary>
    public double LostAfterSeconds { get; init; } = 3;
    /// <summary>A worker whose last step latency exceeds this multiple of the median over workers is Slow.</summary>
    public double SlowFactor { get; init; } = 2;
    /// <summary>Below this latency nobody is called slow: millisecond jitter is not a health problem.</summary>
    public double SlowMinimumSeconds { get; init; } = 0.05;
}

public static class WorkerHealth
{
    public static WorkerState Classify(in WorkerObservation worker, double now, double medianLatency, WorkerHealthOptions options)
    {
        if (now - worker.LastHeartbeat > options.LostAfterSeconds) return WorkerState.Lost;
        if (worker.Rejoining) return WorkerState.Rejoining;
        if (!worker.Assigned) return WorkerState.Ready;
        bool slow = double.IsFinite(worker.LastStepLatency) && double.IsFinite(medianLatency)
            && worker.LastStepLatency > options.SlowMinimumSeconds
            && worker.LastStepLatency > options.SlowFactor * medianLatency;
        return slow ? WorkerState.Slow : WorkerState.Busy;
    }

    /// <summary>Classifies every worker against the median step latency of the workers that are still heard from.</summary>
    public static WorkerState[] ClassifyAll(IReadOnlyList<WorkerObservation> workers, double now, WorkerHealthOptions options)
    {
        var latencies = workers
            .Where(w => now - w.LastHeartbeat <= options.LostAfterSeconds && double.IsFinite(w.LastStepLatency))
            .Select(w => w.LastStepLatency).Order().ToArray();
        double median = latencies.Length == 0 ? double.NaN
            : latencies.Length % 2 == 1 ? latencies[latencies.Length / 2]
            : (latencies[latencies.Length / 2 - 1] + latencies[latencies.Length / 2]) / 2;
        var states = new WorkerState[workers.Count];
        for (int i = 0; i < states.Length; i++) states[i] = Classify(workers[i], now, median, options);
        return states;
    }
}
