// Computes one aligned block of shards on one thread: each shard's summed gradient goes through the pairwise tree
// reducer, so the block's sum is the subtree the coordinator expects. Used by local threads and remote workers.
using DistTrain.Core.Data;
using DistTrain.Core.Model;

namespace DistTrain.Core.Training;

public sealed class ShardBlockComputer
{
    private readonly NetworkWorkspace _workspace;
    private readonly PairwiseTreeReducer _reducer;

    public ShardBlockComputer(Network network, int maxShardRows, int maxShardsPerBlock)
    {
        _workspace = new NetworkWorkspace(network, maxShardRows);
        _reducer = new PairwiseTreeReducer(network.ParameterCount, maxShardsPerBlock);
        MaxShardsPerBlock = maxShardsPerBlock;
    }

    public NetworkWorkspace Workspace => _workspace;
    public int MaxShardsPerBlock { get; }

    /// <summary>
    /// Sums the gradients of shards [firstShard, firstShard+shardCount) of <paramref name="plan"/> into
    /// <paramref name="destination"/> and records each shard's loss, correct count and size at its shard index.
    /// <paramref name="step"/> decides the dropout masks (with each sample's index, not its shard). With
    /// <paramref name="roundLeaves"/> (the 16-bit wire) each shard's gradient is rounded to bfloat16 before it joins the
    /// tree: the rounding happens per shard, whoever computes it, so the sums stay independent of the assignment.
    /// </summary>
    public void ComputeBlock(ReadOnlySpan<float> parameters, Dataset data, ReadOnlySpan<int> batchIndices,
        ShardPlan plan, int firstShard, int shardCount, float[] destination,
        Span<double> shardLoss, Span<int> shardCorrect, Span<int> shardSamples, long step, bool roundLeaves = false)
    {
        if (shardCount > MaxShardsPerBlock)
            throw new ArgumentOutOfRangeException(nameof(shardCount), shardCount, $"at most {MaxShardsPerBlock}");
        _reducer.Begin(destination);
        for (int s = firstShard; s < firstShard + shardCount; s++)
        {
            var (start, length) = plan.Shard(s);
            var leaf = _reducer.NextLeaf();
            shardLoss[s] = _workspace.ComputeGradient(parameters, data, batchIndices.Slice(start, length), leaf,
                out int correct, step);
            shardCorrect[s] = correct;
            shardSamples[s] = length;
            if (roundLeaves) Kernels.BFloat16.RoundInPlace(leaf);
            _reducer.CommitLeaf();
        }
        _reducer.Finish();
    }
}
