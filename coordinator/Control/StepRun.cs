// One step inside the machine: its shard plan, the attempt in hand (a StepAssignment), the requests still open with
// when they were sent and when they run out, and — while no worker is ready — since when it has been waiting.
using DistTrain.Core.Training;

namespace DistTrain.Coordinator.Control;

internal sealed class StepRun(long step, ShardPlan plan, TimeSpan startedAt)
{
    public long Step { get; } = step;
    public ShardPlan Plan { get; } = plan;
    public TimeSpan StartedAt { get; } = startedAt;
    /// <summary>Attempts planned so far (waiting for workers is not one).</summary>
    public int Attempt { get; set; }
    public StepAssignment? Assignment { get; set; }
    /// <summary>Requests the machine still waits for, by dispatch id (sorted: sweeps and failures go in send order).</summary>
    public SortedDictionary<int, OpenRequest> Open { get; } = [];
    /// <summary>The attempt's accepted blocks' gradient norms, by block (for the outlier log).</summary>
    public Dictionary<int, double> Norms { get; } = [];
    /// <summary>A worker was lost during this attempt: starting over may help, unlike a block every worker rejected.</summary>
    public bool LostAny { get; set; }
    /// <summary>Since when the step has waited for a ready worker (null: not waiting).</summary>
    public TimeSpan? WaitingSince { get; set; }
    public TimeSpan NextNotice { get; set; }
}

/// <summary>A request in flight: to which life of its worker, sent when, given up when.</summary>
internal sealed record OpenRequest(Dispatch Dispatch, long Generation, TimeSpan SentAt, TimeSpan Deadline);
