// The control plane's inputs: facts reported by the gRPC handlers, the preparer, the step transport and the trainer.
// Each says what happened, never what to do about it; the machine decides. Time is not in them: it advances only by
// Tick(now), so a scenario replays exactly.
using DistTrain.Core.Training;

namespace DistTrain.Coordinator.Control;

public abstract record ClusterEvent;

/// <summary>
/// A worker asks to join (Register). The machine answers with a RegistrationAnswer or a RegistrationRefused command.
/// <paramref name="SessionDigest"/>: SHA-256 of the secret the worker process chose for its life (null: none given),
/// the only proof that a registration comes from the process that already holds the address.
/// </summary>
public sealed record WorkerRegistering(string Address, int Cores, byte[]? SessionDigest = null) : ClusterEvent;

/// <summary>
/// A worker's heartbeat, naming the coordinator run that gave it its id and the digest of its session secret.
/// Answered by a HeartbeatAnswer command.
/// </summary>
public sealed record HeartbeatReceived(string WorkerId, string CoordinatorRun, byte[]? SessionDigest = null) : ClusterEvent;

/// <summary>Prepare succeeded; <paramref name="SameHost"/>: it took the same-host transport. Detail: data and transport, for the log.</summary>
public sealed record WorkerPrepared(string WorkerId, long Generation, bool SameHost, string Detail) : ClusterEvent;

/// <summary>The worker cannot take part (another model size, other data, a refusal status).</summary>
public sealed record WorkerRefused(string WorkerId, long Generation, string Reason) : ClusterEvent;

/// <summary>The worker could not be reached while being prepared.</summary>
public sealed record WorkerUnreachable(string WorkerId, long Generation, string Reason) : ClusterEvent;

/// <summary>The run is ready to train: the start-up wait begins (and ends with StartTraining or FailRun).</summary>
public sealed record TrainingRequested : ClusterEvent;

/// <summary>The trainer needs the gradient sums of step <paramref name="Step"/>, cut into shards by <paramref name="Plan"/>.</summary>
public sealed record StepRequested(long Step, ShardPlan Plan) : ClusterEvent;

/// <summary>
/// A request was answered; <paramref name="Verdicts"/> are the transport's checks of its blocks (shape, range,
/// finiteness, shard statistics; Elsewhere: another pool member claimed the block). The compute times are the worker's
/// own figures, bounded by the machine's own timing; <paramref name="Norms"/>: each valid block's gradient norm (NaN
/// otherwise; null: not measured).
/// </summary>
public sealed record ReplyReceived(long Step, int Attempt, int Dispatch, IReadOnlyList<BlockVerdict> Verdicts,
    double ComputeSeconds = 0, double ComputeCpuSeconds = 0, IReadOnlyList<double>? Norms = null) : ClusterEvent;

/// <summary>A request failed in the transport (an error status, a dropped connection, the transport's deadline).</summary>
public sealed record RequestFailed(long Step, int Attempt, int Dispatch, string Reason) : ClusterEvent;

/// <summary>The trainer no longer waits for the step (it was cancelled).</summary>
public sealed record StepAbandoned(long Step, string Reason) : ClusterEvent;

/// <summary>The run is over: trained to the end (<paramref name="Completed"/>) or stopped (<paramref name="Reason"/>).</summary>
public sealed record RunEnded(bool Completed, string Reason = "") : ClusterEvent;
