// The control plane's outputs: what to send to whom, what to give up on, what to log, and the answers to the events
// that expect one. ClusterDriver executes them in order through the transport and the preparer. Each prints as one
// short line, so a scenario test compares the exact sequence as text.
using DistTrain.Core.Training;

namespace DistTrain.Coordinator.Control;

public abstract record ClusterCommand;

/// <summary>The answer to WorkerRegistering: the worker's id, the run that issued it and how often to heartbeat.</summary>
public sealed record RegistrationAnswer(string Address, string WorkerId, long Generation, string CoordinatorRun,
    TimeSpan HeartbeatInterval) : ClusterCommand
{
    public override string ToString() => $"answer register {Address}: {WorkerId}#{Generation}";
}

/// <summary>Why a registration was refused: the gRPC adapter answers AlreadyExists or ResourceExhausted.</summary>
public enum RegistrationRefusal
{
    /// <summary>A live worker holds the address and the caller did not prove to be that worker (its session digest).</summary>
    AddressHeld,
    /// <summary>The registry holds --max-workers live workers; a new address has no room.</summary>
    Full,
}

/// <summary>The answer to WorkerRegistering when the registration is refused; the registry is left as it was.</summary>
public sealed record RegistrationRefused(string Address, RegistrationRefusal Why, string Reason) : ClusterCommand
{
    public override string ToString() => $"refuse register {Address}: {Reason}";
}

/// <summary>
/// The answer to HeartbeatReceived: whether the worker is known (false: register again) and the run's state, from
/// which a worker can tell that the run has ended.
/// </summary>
public sealed record HeartbeatAnswer(string WorkerId, bool Known, RunState Run) : ClusterCommand
{
    public override string ToString() => $"answer heartbeat {WorkerId}: {(Known ? "known" : "unknown")}";
}

/// <summary>Bring this life of the worker to Ready: Prepare, the dataset if it lacks it; answer with WorkerPrepared/Refused/Unreachable.</summary>
public sealed record PrepareWorker(string WorkerId, long Generation, string Address, int Cores) : ClusterCommand
{
    public override string ToString() => $"prepare {WorkerId}#{Generation}";
}

/// <summary>This life of the worker is over: close its connection.</summary>
public sealed record DisconnectWorker(string WorkerId, long Generation) : ClusterCommand
{
    public override string ToString() => $"disconnect {WorkerId}#{Generation}";
}

/// <summary>
/// An attempt at a step begins with <paramref name="BlockCount"/> blocks: reset the step's results; write the weights
/// to the shared file when a same-host worker takes part; open a claim pool when the attempt has one.
/// </summary>
public sealed record BeginAttempt(long Step, int Attempt, int BlockCount, bool SharedWeights, bool Pool) : ClusterCommand
{
    public override string ToString() =>
        $"begin step {Step} attempt {Attempt}: {BlockCount} blocks{(SharedWeights ? ", shared weights" : "")}{(Pool ? ", pool" : "")}";
}

/// <summary>One block of a step: its index among the attempt's blocks and its shards.</summary>
public readonly record struct BlockSpan(int Index, int FirstShard, int ShardCount)
{
    public override string ToString() => $"[{FirstShard},{FirstShard + ShardCount})";
}

/// <summary>
/// Ask worker <paramref name="WorkerId"/> (this life of it) for these blocks — when <paramref name="Pooled"/>, those of
/// them it claims from the attempt's pool — within <paramref name="Timeout"/>.
/// </summary>
public sealed record SendRequest(long Step, int Attempt, int Dispatch, string WorkerId, long Generation,
    IReadOnlyList<BlockSpan> Blocks, bool Pooled, TimeSpan Timeout) : ClusterCommand
{
    public override string ToString() =>
        $"send {Step}.{Attempt}#{Dispatch} to {WorkerId}#{Generation}: {string.Join(" ", Blocks)}{(Pooled ? " pooled" : "")}";
}

/// <summary>The machine no longer waits for this request: abandon the call (its answer, if any, is ignored).</summary>
public sealed record CancelRequest(long Step, int Attempt, int Dispatch, string WorkerId) : ClusterCommand
{
    public override string ToString() => $"cancel {Step}.{Attempt}#{Dispatch} ({WorkerId})";
}

/// <summary>Keep these blocks (attempt block indices) of the request's reply: they are the step's results.</summary>
public sealed record KeepBlocks(long Step, int Attempt, int Dispatch, IReadOnlyList<int> Blocks) : ClusterCommand
{
    public override string ToString() => $"keep {Step}.{Attempt}#{Dispatch} blocks {string.Join(" ", Blocks)}";
}

/// <summary>Every block is in: complete the pairwise tree and hand the step back; <paramref name="Blocks"/> say who computed what.</summary>
public sealed record CompleteStep(long Step, IReadOnlyList<BlockRecord> Blocks) : ClusterCommand
{
    public override string ToString() =>
        $"complete step {Step}: {string.Join(" ", Blocks.Select(b => $"{b.Executor}[{b.FirstShard},{b.FirstShard + b.ShardCount})"))}";
}

/// <summary>The step cannot complete (or was abandoned: <paramref name="Cancelled"/>); the trainer gets the reason.</summary>
public sealed record FailStep(long Step, string Reason, bool Cancelled = false) : ClusterCommand
{
    public override string ToString() => $"fail step {Step}: {Reason}";
}

/// <summary>The start-up wait is over: train with the ready workers.</summary>
public sealed record StartTraining(int Ready) : ClusterCommand
{
    public override string ToString() => $"start training with {Ready} worker(s)";
}

/// <summary>The start-up wait failed: too few workers.</summary>
public sealed record FailRun(string Reason) : ClusterCommand
{
    public override string ToString() => $"fail run: {Reason}";
}

/// <summary>A line for the coordinator's log.</summary>
public sealed record LogLine(string Message) : ClusterCommand
{
    public override string ToString() => $"log: {Message}";
}
