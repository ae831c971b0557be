// Scripted scenarios for the per-step assignment state machine: proportional split, failures, malformed and
// non-finite blocks — replayed exactly, no network.
using DistTrain.Coordinator.Distributed;

namespace DistTrain.Tests.Distributed;

public class StepAssignmentTests
{
    [Fact]
    public void SplitsInProportionToThroughputIntoAlignedBlocks()
    {
        var state = new StepAssignment(8, [("w1", 300), ("w2", 100)]);
        var start = state.Start();
        Assert.Equal(2, start.Count);
        Assert.Equal([(0, 4), (4, 2)], start[0].Blocks.Select(state.BlockRange).ToList());
        Assert.Equal([(6, 2)], start[1].Blocks.Select(state.BlockRange).ToList());
        Assert.Equal([3, 2, 1], StepAssignment.Split(6, [3, 2, 1]));
    }

    [Fact]
    public void FailedWorkerBlocksGoToTheSurvivor()
    {
        var state = new StepAssignment(4, [("w1", 1), ("w2", 1)]);
        var start = state.Start();
        var progress = state.OnFailure(start[1].Id);
        var retry = Assert.Single(progress.Next);
        Assert.Equal("w1", retry.Worker);
        state.OnReply(start[0].Id, [BlockVerdict.Valid]);
        state.OnReply(retry.Id, [BlockVerdict.Valid]);
        Assert.True(state.IsComplete);
        Assert.Equal("w1", state.ExecutorOf(1));
    }

    [Fact]
    public void NonFiniteIsRecomputedElsewhereThenAcceptedWhenItRepeats()
    {
        var state = new StepAssignment(2, [("w1", 1), ("w2", 1)]);
        var start = state.Start();
        var first = state.OnReply(start[0].Id, [BlockVerdict.NonFinite]);
        Assert.Empty(first.Accepted);
        var retry = Assert.Single(first.Next);
        Assert.Equal("w2", retry.Worker);
        state.OnReply(start[1].Id, [BlockVerdict.Valid]);
        var second = state.OnReply(retry.Id, [BlockVerdict.NonFinite]);
        Assert.Equal([0], second.Accepted);
        Assert.True(state.IsComplete);
        Assert.Contains(state.Notes, n => n.Contains("accepted as genuine"));
    }

    [Fact]
    public void MalformedBlockFromEveryWorkerFailsTheStep()
    {
        var state = new StepAssignment(2, [("w1", 1), ("w2", 1)]);
        var start = state.Start();
        var retry = Assert.Single(state.OnReply(start[0].Id, [BlockVerdict.Invalid]).Next);
        state.OnReply(retry.Id, [BlockVerdict.Invalid]);
        Assert.False(state.IsComplete);
        Assert.Contains("no live worker", state.FailureReason);
    }
}
