// A worker as the control plane knows it: one immutable record per life. A worker that registers again (back after
// being lost, or restarted) keeps its id and gets the next generation, so a late message of an earlier life is told
// apart by its generation, never by comparing connection objects.
namespace DistTrain.Coordinator.Control;

/// <summary>
/// Membership. A registration is answered with a Prepare at once, so a record starts Preparing (a new address) or
/// Rejoining (an address seen before, prepared again: it may have restarted and lost its model) and becomes Ready, or
/// Refused (it cannot train this model on this data), or Lost (silent past the heartbeat timeout, or a request failed).
/// Done is not the machine's: the dashboard shows every worker so once the run has ended.
/// </summary>
public enum WorkerState { Preparing, Ready, Lost, Rejoining, Refused, Done }

/// <summary>How a ready worker answers, judged against its peers (see HealthRules).</summary>
public enum WorkerHealth { Ok, Straggler, Hung }

public sealed record WorkerRecord(string Id, long Generation, string Address, int Cores, WorkerState State, TimeSpan LastSeen)
{
    /// <summary>Why it is lost, refused or rejoining ("" otherwise).</summary>
    public string Reason { get; init; } = "";
    /// <summary>It took the same-host transport: reads the weights from the shared file and can join a step's pool.</summary>
    public bool SameHost { get; init; }
    /// <summary>The step in progress (or last started) when it became ready; -1 when none had started.</summary>
    public long ReadyDuringStep { get; init; } = -1;
    /// <summary>How often this id came back after being lost or restarting.</summary>
    public int Rejoins { get; init; }
    /// <summary>SHA-256 of this life's session secret (null: it gave none): registrations and heartbeats must match it.</summary>
    public byte[]? SessionDigest { get; init; }
    /// <summary>A heartbeat with another digest was logged in this life (once is enough to name a spoofer).</summary>
    public bool MismatchLogged { get; init; }

    /// <summary>Whether heartbeats can still expire it: every state but Lost and Refused.</summary>
    public bool Live => State is WorkerState.Preparing or WorkerState.Rejoining or WorkerState.Ready;

    public override string ToString() => $"{Id}#{Generation}";
}
