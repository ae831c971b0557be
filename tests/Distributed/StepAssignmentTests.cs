// Scripted scenarios for the per-step assignment state machine: proportional split, failures, malformed and
// non-finite blocks, same-host pools — replayed exactly, no network.
using DistTrain.Coordinator.Control;
using DistTrain.Core.Training;

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

    [Fact]
    public void SameHostWorkersShareOnePoolOfSmallAlignedBlocksLargestFirst()
    {
        // w1 and w2 share the machine, w3 does not: the pool holds w1's and w2's shares (8 of 12 shards) as one run.
        var state = new StepAssignment(12, [("w1", 1), ("w2", 1), ("w3", 1)], pool: ["w1", "w2"]);
        Assert.True(state.HasPool);
        var start = state.Start();
        Assert.Equal(3, start.Count);
        var (p1, p2, alone) = (start[0], start[1], start[2]);
        Assert.True(p1.Pooled && p2.Pooled && !alone.Pooled);
        Assert.Equal(["w1", "w2", "w3"], start.Select(d => d.Worker));
        Assert.Equal(p1.Blocks, p2.Blocks); // same blocks, same claim order
        var ranges = p1.Blocks.Select(state.BlockRange).ToList();
        Assert.Equal(2 * StepAssignment.PoolBlocksPerMember, ranges.Count);
        Assert.All(ranges, r => Assert.True(GradientReduction.IsAlignedBlock(r.FirstShard, r.ShardCount, 12)));
        Assert.Equal(Enumerable.Range(0, 8), ranges.SelectMany(r => Enumerable.Range(r.FirstShard, r.ShardCount)).Order());
        Assert.Equal(ranges.OrderByDescending(r => r.ShardCount).ThenBy(r => r.FirstShard), ranges);
        Assert.Equal([(8, 4)], alone.Blocks.Select(state.BlockRange));

        // Pool blocks of a truncated batch are still aligned nodes of its tree.
        var odd = new StepAssignment(11, [("w1", 1), ("w2", 1)], pool: ["w1", "w2"]);
        var blocks = odd.Start()[0].Blocks.Select(odd.BlockRange).ToList();
        Assert.All(blocks, r => Assert.True(GradientReduction.IsAlignedBlock(r.FirstShard, r.ShardCount, 11)));
        Assert.Equal(Enumerable.Range(0, 11), blocks.SelectMany(r => Enumerable.Range(r.FirstShard, r.ShardCount)).Order());

        // One same-host worker alone is no pool.
        Assert.False(new StepAssignment(8, [("w1", 1), ("w2", 1)], pool: ["w1"]).HasPool);
        Assert.All(new StepAssignment(8, [("w1", 1), ("w2", 1)], pool: ["w1"]).Start(), d => Assert.False(d.Pooled));
    }

    [Fact]
    public void PoolBlocksAreTakenByWhoeverClaimedThem()
    {
        var state = new StepAssignment(8, [("w1", 1), ("w2", 1)], pool: ["w1", "w2"]);
        var start = state.Start();
        int n = start[0].Blocks.Count;
        // w1 claimed the first three blocks, w2 the rest.
        var w1 = state.OnReply(start[0].Id, Enumerable.Range(0, n).Select(i => i < 3 ? BlockVerdict.Valid : BlockVerdict.Elsewhere).ToList());
        Assert.Equal(start[0].Blocks.Take(3), w1.Accepted);
        Assert.Empty(w1.Next);
        Assert.False(state.IsComplete);
        var w2 = state.OnReply(start[1].Id, Enumerable.Range(0, n).Select(i => i < 3 ? BlockVerdict.Elsewhere : BlockVerdict.Valid).ToList());
        Assert.Equal(start[1].Blocks.Skip(3), w2.Accepted);
        Assert.Empty(w2.Next);
        Assert.True(state.IsComplete);
        Assert.Equal(["w1", "w1", "w1", .. Enumerable.Repeat("w2", n - 3)], start[0].Blocks.Select(b => state.ExecutorOf(b)!));
    }

    [Fact]
    public void PoolBlocksOfAFailedMemberAreRecomputedOnceNobodyElseHoldsThem()
    {
        var state = new StepAssignment(8, [("w1", 1), ("w2", 1)], pool: ["w1", "w2"]);
        var start = state.Start();
        var blocks = start[0].Blocks;
        // w2 computed blocks 0 and 1 and says the others were claimed elsewhere (by w1, which then fails).
        var w2 = state.OnReply(start[1].Id, blocks.Select((_, i) => i < 2 ? BlockVerdict.Valid : BlockVerdict.Elsewhere).ToList());
        Assert.Equal(blocks.Take(2), w2.Accepted);
        Assert.Empty(w2.Next); // w1's request is still open: the other blocks may come from it
        var failed = state.OnFailure(start[0].Id);
        var retry = Assert.Single(failed.Next);
        Assert.Equal("w2", retry.Worker);
        Assert.False(retry.Pooled);
        Assert.Equal(blocks.Skip(2), retry.Blocks);
        state.OnReply(retry.Id, retry.Blocks.Select(_ => BlockVerdict.Valid).ToList());
        Assert.True(state.IsComplete);

        // The other order: w1 fails first; its blocks wait for w2, which answers for all of them but one.
        state = new StepAssignment(8, [("w1", 1), ("w2", 1)], pool: ["w1", "w2"]);
        start = state.Start();
        Assert.Empty(state.OnFailure(start[0].Id).Next);
        var last = state.OnReply(start[1].Id, blocks.Select((_, i) => i == 0 ? BlockVerdict.Elsewhere : BlockVerdict.Valid).ToList());
        var again = Assert.Single(last.Next);
        Assert.Equal("w2", again.Worker);
        Assert.Equal([blocks[0]], again.Blocks);
        Assert.Contains(state.Notes, n => n.Contains("claimed by no member"));
    }

    [Fact]
    public void APoolBlockComputedTwiceKeepsTheFirstResultAndElsewhereOutsideAPoolIsAnError()
    {
        var state = new StepAssignment(4, [("w1", 1), ("w2", 1)], pool: ["w1", "w2"]);
        var start = state.Start();
        var all = start[0].Blocks.Select(_ => BlockVerdict.Valid).ToList();
        Assert.Equal(start[0].Blocks, state.OnReply(start[0].Id, all).Accepted);
        Assert.Empty(state.OnReply(start[1].Id, all).Accepted);
        Assert.True(state.IsComplete);
        Assert.All(start[0].Blocks, b => Assert.Equal("w1", state.ExecutorOf(b)));
        Assert.Contains(state.Notes, n => n.Contains("the second ignored"));

        var plain = new StepAssignment(4, [("w1", 1), ("w2", 1)]);
        var first = plain.Start()[0];
        Assert.Throws<ArgumentException>(() => plain.OnReply(first.Id, first.Blocks.Select(_ => BlockVerdict.Elsewhere).ToList()));
    }

    [Fact]
    public void AMalformedPoolBlockIsRecomputedByTheOtherMember()
    {
        var state = new StepAssignment(8, [("w1", 1), ("w2", 1)], pool: ["w1", "w2"]);
        var start = state.Start();
        var blocks = start[0].Blocks;
        // w1 computed everything, block 0 malformed; w2 claimed nothing and is still a candidate for it.
        var w1 = state.OnReply(start[0].Id, blocks.Select((_, i) => i == 0 ? BlockVerdict.Invalid : BlockVerdict.Valid).ToList());
        var retry = Assert.Single(w1.Next);
        Assert.Equal("w2", retry.Worker);
        Assert.Equal([blocks[0]], retry.Blocks);
        state.OnReply(start[1].Id, blocks.Select(_ => BlockVerdict.Elsewhere).ToList());
        Assert.False(state.IsComplete);
        state.OnReply(retry.Id, [BlockVerdict.Valid]);
        Assert.True(state.IsComplete);
        Assert.Equal("w2", state.ExecutorOf(blocks[0]));
    }

    [Fact]
    public void AWorkerMeasuredVerySlowStillGetsAShardSoItIsMeasuredAgain()
    {
        Assert.Equal([7, 1], StepAssignment.Split(8, [1000, 1]));
        Assert.Equal([6, 1, 1], StepAssignment.Split(8, [1000, 1, 1]));
        Assert.Equal([1, 0], StepAssignment.Split(1, [1000, 1])); // fewer shards than workers: someone must wait
        var state = new StepAssignment(8, [("w1", 1000), ("w2", 0.001)]);
        Assert.Contains(state.Start(), d => d.Worker == "w2");
    }
}
