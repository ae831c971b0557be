// The control plane as others may see it: an immutable snapshot the driver publishes (the dashboard's workers table,
// /api/status, /metrics). Built by the machine from its own records, so the page, the log and the machine use one
// WorkerState, one definition of lost and one of straggler and hung.
namespace DistTrain.Coordinator.Control;

/// <summary>The run as a whole: before the start-up wait, waiting for workers (at start or mid-run), training, over.</summary>
public enum RunState { Starting, WaitingForWorkers, Training, Finished, Failed }

/// <summary>One worker; times in seconds, NaN when not known yet.</summary>
/// <param name="LastStepLatencySeconds">Its last request's wall time (send to reply, on the coordinator's clock).</param>
/// <param name="RecentLatencySeconds">The median of its recent request times (the health window).</param>
/// <param name="SamplesPerSecond">The throughput its share of a step is planned by.</param>
/// <param name="Errors">Rejected blocks (bad shape, range or non-finite values) and failed requests; never a pool block another member claimed.</param>
/// <param name="HealthDetail">What makes it a straggler or hung: figures and, when hung, the request it has not answered.</param>
public sealed record WorkerView(
    string Id, long Generation, string Address, int Cores, WorkerState State, string Reason,
    double HeartbeatAgeSeconds, double LastStepLatencySeconds, double RecentLatencySeconds, double SamplesPerSecond,
    long ShardsDone, long Errors, int Rejoins, WorkerHealth Health, string HealthDetail);

/// <param name="Phase">What the run is doing, in words (the step and attempt in hand, or what it waits for).</param>
/// <param name="Step">The step in progress or last started (-1 before the first).</param>
/// <param name="MedianStepSeconds">The median time of the recent steps (NaN before the first).</param>
public sealed record ClusterView(double AtSeconds, RunState Run, string Phase, long Step, int Attempt, double MedianStepSeconds,
    IReadOnlyList<WorkerView> Workers)
{
    public static ClusterView Empty { get; } = new(0, RunState.Starting, "starting", -1, 0, double.NaN, []);
}
