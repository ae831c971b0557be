// The data plane's check of one reply block: the shard statistics a worker sends are checked against what the
// coordinator knows (samples assigned, 0 ≤ correct ≤ samples, losses non-negative and finite), beside the gradient.
using DistTrain.Coordinator.Control;
using DistTrain.Coordinator.Distributed;
using DistTrain.Core.Training;
using DistTrain.Protos;

namespace DistTrain.Tests.Distributed;

public class ReplyCheckTests
{
    // Batches of 7 samples in shards of 2: the block [2, 4) holds shards of 2 and 1 samples.
    private static readonly ShardPlan Plan = new(7, 2);
    private static readonly BlockSpan Asked = new(0, 2, 2);

    private static ComputeReply Reply(double[] loss, int[] correct, int[] samples, float[]? gradient = null)
    {
        var block = new BlockResult
        {
            FirstShard = Asked.FirstShard, ShardCount = Asked.ShardCount, GradientSum = WireArrays.Wrap(gradient ?? [1, -2, 2]),
        };
        block.ShardLoss.AddRange(loss);
        block.ShardCorrect.AddRange(correct);
        block.ShardSamples.AddRange(samples);
        return new ComputeReply { ProtocolVersion = Protocol.Version, Step = 5, Blocks = { block } };
    }

    private static BlockVerdict Judge(ComputeReply reply, out double norm) =>
        ReplyCheck.Judge(reply, 0, Asked, Plan, step: 5, slots: null, pooled: false, parameterCount: 3, out norm);

    /// <summary>A one-shard block (shard 2 of the plan: 2 samples) whose sum is <paramref name="bytes"/> bytes of bfloat16.</summary>
    private static ComputeReply Bf16Reply(int bytes)
    {
        var block = new BlockResult { FirstShard = 2, ShardCount = 1, GradientSum = Google.Protobuf.ByteString.CopyFrom(new byte[bytes]) };
        block.ShardLoss.Add(0.5);
        block.ShardCorrect.Add(1);
        block.ShardSamples.Add(2);
        return new ComputeReply { ProtocolVersion = Protocol.Version, Step = 5, Blocks = { block } };
    }

    [Fact]
    public void ABlockStillInBfloat16IsJudgedOnItsLengthAndTheSquaresTakenOfIt()
    {
        var one = new BlockSpan(0, 2, 1);
        BlockVerdict Encoded(ComputeReply reply, double? squares, BlockSpan asked, out double norm) =>
            ReplyCheck.Judge(reply, 0, asked, Plan, step: 5, slots: null, pooled: false, parameterCount: 3, out norm, squares);
        Assert.Equal(BlockVerdict.Valid, Encoded(Bf16Reply(6), 9, one, out double norm));
        Assert.Equal(3, norm);
        // Non-finite squares (a NaN or ∞ among the values) are NonFinite, as a float32 block's would be.
        Assert.Equal(BlockVerdict.NonFinite, Encoded(Bf16Reply(6), double.PositiveInfinity, one, out _));
        Assert.Equal(BlockVerdict.NonFinite, Encoded(Bf16Reply(6), double.NaN, one, out _));
        // Two bytes a value, no more, no fewer; one shard. Without squares the sum is read as float32, which 6 bytes
        // of 3 values are not.
        Assert.Equal(BlockVerdict.Invalid, Encoded(Bf16Reply(12), 9, one, out _));
        Assert.Equal(BlockVerdict.Invalid, Encoded(Bf16Reply(4), 9, one, out _));
        Assert.Equal(BlockVerdict.Invalid, Encoded(Bf16Reply(6), null, one, out _));
        Assert.Equal(BlockVerdict.Invalid, Encoded(Bf16Reply(6), 9, new BlockSpan(0, 2, 2), out _));
    }

    [Fact]
    public void AnHonestBlockIsValidWithItsNorm()
    {
        Assert.Equal(BlockVerdict.Valid, Judge(Reply([0.7, 0], [2, 0], [2, 1]), out double norm));
        Assert.Equal(3, norm, 12);
    }

    [Theory]
    [InlineData(-1e-9)]
    [InlineData(-1e300)]
    [InlineData(double.NegativeInfinity)]
    public void ANegativeLossIsInvalid(double loss)
    {
        Assert.Equal(BlockVerdict.Invalid, Judge(Reply([0.5, loss], [1, 1], [2, 1]), out double norm));
        Assert.True(double.IsNaN(norm));
    }

    [Theory]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void ANonFiniteLossIsNonFiniteLikeANonFiniteGradient(double loss) =>
        Assert.Equal(BlockVerdict.NonFinite, Judge(Reply([loss, 0.5], [1, 1], [2, 1]), out _));

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public void ANonFiniteGradientElementIsNonFiniteWhereverItIs(float bad)
    {
        for (int at = 0; at < 3; at++)
        {
            float[] gradient = [1, -2, 2];
            gradient[at] = bad;
            Assert.Equal(BlockVerdict.NonFinite, Judge(Reply([0.5, 0.5], [1, 1], [2, 1], gradient), out double norm));
            Assert.True(double.IsNaN(norm));
        }
    }

    [Fact]
    public void TheLargestFiniteGradientIsValidWithAFiniteNorm()
    {
        // The norm is summed in double, so it cannot overflow where every element is finite: one pass checks both.
        Assert.Equal(BlockVerdict.Valid, Judge(Reply([0.5, 0.5], [1, 1], [2, 1], [float.MaxValue, -float.MaxValue, float.MaxValue]), out double norm));
        Assert.Equal(Math.Sqrt(3) * float.MaxValue, norm, float.MaxValue * 1e-12);
    }

    [Theory]
    [InlineData(new[] { 3, 0 }, new[] { 2, 1 })] // correct > samples
    [InlineData(new[] { -1, 0 }, new[] { 2, 1 })] // correct < 0
    [InlineData(new[] { 0, 0 }, new[] { 2, 2 })] // samples other than assigned
    [InlineData(new[] { 0, 0 }, new[] { 1, 1 })]
    public void CountsOutsideWhatWasAssignedAreInvalid(int[] correct, int[] samples) =>
        Assert.Equal(BlockVerdict.Invalid, Judge(Reply([0.5, 0.5], correct, samples), out _));

    [Fact]
    public void AHugeFiniteGradientIsValidAndItsNormDoesNotOverflow()
    {
        Assert.Equal(BlockVerdict.Valid, Judge(Reply([0.5, 0.5], [1, 1], [2, 1], [3e38f, 3e38f, 0]), out double norm));
        Assert.Equal((double)3e38f * Math.Sqrt(2), norm, 1e25);
    }

    /// <summary>Slots in memory, stamped as the shared slot file stamps them.</summary>
    private sealed class Slots(int count, int length) : IGradientSlots
    {
        private readonly (long Step, int First, int Count, float[] Sum)?[] _slots = new (long, int, int, float[])?[count];
        public int SlotCount => count;

        public void Write(int slot, long step, int firstShard, int shardCount, ReadOnlySpan<float> sum) =>
            _slots[slot] = (step, firstShard, shardCount, sum[..length].ToArray());

        public bool TryRead(int slot, long step, int firstShard, int shardCount, out ReadOnlySpan<float> sum)
        {
            sum = default;
            if (_slots[slot] is not { } held || held.Step != step || held.First != firstShard || held.Count != shardCount) return false;
            sum = held.Sum;
            return true;
        }
    }

    private static ComputeReply WithSum(Action<BlockResult> place)
    {
        var reply = Reply([0.7, 0], [2, 0], [2, 1]);
        place(reply.Blocks[0]);
        return reply;
    }

    private static BlockVerdict Judge(ComputeReply reply, IGradientSlots? slots, bool pooled, out double norm) =>
        ReplyCheck.Judge(reply, 0, Asked, Plan, step: 5, slots, pooled, parameterCount: 3, out norm);

    [Fact]
    public void WhereTheSumIsDecidesTheVerdict()
    {
        var slots = new Slots(4, 3);
        slots.Write(Asked.Index, 5, Asked.FirstShard, Asked.ShardCount, [2, 0, 0]);
        // In the slot the request named, stamped with this step and block: valid, its norm measured there.
        Assert.Equal(BlockVerdict.Valid, Judge(WithSum(b => b.InSharedSlot = new SumInSlot()), slots, pooled: false, out double norm));
        Assert.Equal(2, norm, 12);
        // From a worker without slots (it was not asked to use them), or a slot of another step: invalid.
        Assert.Equal(BlockVerdict.Invalid, Judge(WithSum(b => b.InSharedSlot = new SumInSlot()), null, pooled: false, out _));
        slots.Write(Asked.Index, 4, Asked.FirstShard, Asked.ShardCount, [2, 0, 0]);
        Assert.Equal(BlockVerdict.Invalid, Judge(WithSum(b => b.InSharedSlot = new SumInSlot()), slots, pooled: false, out _));
        // A sum in the reply from a worker asked for its slots (a pool member claiming what another computed): invalid.
        Assert.Equal(BlockVerdict.Invalid, Judge(WithSum(_ => { }), slots, pooled: true, out _));
        // No sum anywhere: invalid.
        Assert.Equal(BlockVerdict.Invalid, Judge(WithSum(b => b.ClearSum()), null, pooled: false, out _));
    }

    [Fact]
    public void ClaimedElsewhereIsAnAnswerOnlyInAPool()
    {
        var claimed = new ComputeReply
        {
            ProtocolVersion = Protocol.Version, Step = 5,
            Blocks = { new BlockResult { FirstShard = Asked.FirstShard, ShardCount = Asked.ShardCount, ClaimedElsewhere = new ClaimedElsewhere() } },
        };
        Assert.Equal(BlockVerdict.Elsewhere, Judge(claimed, new Slots(4, 3), pooled: true, out double norm));
        Assert.True(double.IsNaN(norm));
        Assert.Equal(BlockVerdict.Invalid, Judge(claimed, new Slots(4, 3), pooled: false, out _));
        Assert.Equal(BlockVerdict.Invalid, Judge(claimed, null, pooled: false, out _));
    }
}
