// The data plane's check of a reply, block by block, against what was asked: protocol and step, shard range, the
// gradient's length (in the reply, or in the worker's shared slot stamped with this step and block), per-shard
// statistics (samples as assigned, 0 ≤ correct ≤ samples, a loss not below zero: every DistTrain loss — softmax
// cross-entropy, MSE, hinge, BCE with logits — is non-negative), then finiteness of losses and gradient. The verdicts
// go to the machine, which decides what to keep and what to recompute elsewhere.
using DistTrain.Coordinator.Control;
using DistTrain.Core.Training;
using DistTrain.Protos;

namespace DistTrain.Coordinator.Distributed;

internal static class ReplyCheck
{
    /// <summary>
    /// Reply block <paramref name="i"/>, asked as <paramref name="asked"/>; shapes first, then statistics, then finiteness.
    /// <paramref name="norm"/>: the gradient's L2 norm when Valid, NaN otherwise. <paramref name="encodedSquares"/>: the
    /// block's sum is still a one-shard bfloat16 vector (2 bytes a value), and this is the sum of squares the caller took
    /// of it in Clipping's order (NaN when a NaN is among its values); null for a float32 sum, which is measured here.
    /// </summary>
    public static BlockVerdict Judge(ComputeReply reply, int i, BlockSpan asked, ShardPlan plan, long step, IGradientSlots? slots,
        bool pooled, int parameterCount, out double norm, double? encodedSquares = null)
    {
        norm = double.NaN;
        if (reply.ProtocolVersion != Protocol.Version || reply.Step != step || i >= reply.Blocks.Count) return BlockVerdict.Invalid;
        var block = reply.Blocks[i];
        if (block.FirstShard != asked.FirstShard || block.ShardCount != asked.ShardCount) return BlockVerdict.Invalid;
        if (block.SumCase == BlockResult.SumOneofCase.ClaimedElsewhere)
            return pooled ? BlockVerdict.Elsewhere : BlockVerdict.Invalid;
        ReadOnlySpan<float> gradient = default;
        if (encodedSquares is not null
                ? slots is not null || asked.ShardCount != 1 || block.SumCase != BlockResult.SumOneofCase.GradientSum ||
                  block.GradientSum.Length != 2L * parameterCount
                : !TryGradient(block, asked, step, slots, parameterCount, out gradient))
            return BlockVerdict.Invalid;
        if (block.ShardLoss.Count != asked.ShardCount || block.ShardCorrect.Count != asked.ShardCount ||
            block.ShardSamples.Count != asked.ShardCount) return BlockVerdict.Invalid;
        bool finite = true;
        for (int k = 0; k < asked.ShardCount; k++)
        {
            int samples = plan.Shard(asked.FirstShard + k).Length;
            // A negative loss cannot be genuine (NaN passes here: non-finite is judged below, and can be).
            if (block.ShardSamples[k] != samples || block.ShardCorrect[k] < 0 || block.ShardCorrect[k] > samples ||
                block.ShardLoss[k] < 0)
                return BlockVerdict.Invalid;
            finite &= double.IsFinite(block.ShardLoss[k]);
        }
        if (!finite) return BlockVerdict.NonFinite;
        // One pass checks both: summed in double, the squares are finite exactly when every element is (a float squared
        // cannot overflow a double, nor can a sum of 2³¹ of them).
        double measured = encodedSquares is { } known ? Math.Sqrt(known) : Norm(gradient);
        if (!double.IsFinite(measured)) return BlockVerdict.NonFinite;
        norm = measured;
        return BlockVerdict.Valid;
    }

    /// <summary>
    /// The L2 norm, summed in double (a float sum of squares overflows for the huge finite sums it is meant to catch),
    /// vectorised: it runs on every block of every step, between the last reply and the optimizer step.
    /// </summary>
    private static double Norm(ReadOnlySpan<float> gradient) => Clipping.GlobalNorm(gradient);

    /// <summary>
    /// The block's sum: in the reply, or — for a worker on the bulk plane — in the slot of the attempt's block, which must be
    /// stamped with this step and range. False when it is missing or has the wrong length.
    /// </summary>
    public static bool TryGradient(BlockResult block, BlockSpan asked, long step, IGradientSlots? slots, int parameterCount,
        out ReadOnlySpan<float> gradient)
    {
        gradient = default;
        return block.SumCase switch
        {
            BlockResult.SumOneofCase.InSharedSlot =>
                slots is not null && slots.TryRead(asked.Index, step, asked.FirstShard, asked.ShardCount, out gradient),
            // A worker on the bulk plane was asked for its sums in its slots: one in the reply (a pool member reporting
            // a block another claimed, say) is refused.
            BlockResult.SumOneofCase.GradientSum =>
                slots is null && WireArrays.TryReadFloats(block.GradientSum, out gradient) && gradient.Length == parameterCount,
            _ => false,
        };
    }
}
