// How one mini-batch is cut into shards of a fixed size: shard s covers batch positions
// [s·ShardSize, min(BatchSize, (s+1)·ShardSize)). The shard numbering fixes the reduction tree.
namespace DistTrain.Core.Training;

public readonly record struct ShardPlan
{
    public ShardPlan(int batchSize, int shardSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(shardSize, 1);
        BatchSize = batchSize;
        ShardSize = shardSize;
    }

    public int BatchSize { get; }
    public int ShardSize { get; }
    public int ShardCount => (BatchSize + ShardSize - 1) / ShardSize;

    public (int Start, int Length) Shard(int shard)
    {
        if ((uint)shard >= (uint)ShardCount)
            throw new ArgumentOutOfRangeException(nameof(shard), shard, $"the plan has {ShardCount} shards");
        int start = shard * ShardSize;
        return (start, Math.Min(ShardSize, BatchSize - start));
    }

    /// <summary>Positions [Start, Start+Length) in the batch covered by shards [first, first+count).</summary>
    public (int Start, int Length) Range(int firstShard, int shardCount)
    {
        int start = firstShard * ShardSize;
        int end = Math.Min(BatchSize, (firstShard + shardCount) * ShardSize);
        return (start, end - start);
    }
}
