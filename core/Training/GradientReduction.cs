// The fixed pairwise reduction tree over shard indices. Level by level, node i absorbs node i + stride
// (stride = 1, 2, 4, ...); a node without a partner passes up unchanged. Any split of the shards into aligned
// power-of-two blocks is a set of complete subtrees, so whoever computes a block (a thread, a remote worker) can
// reduce it alone and the whole sum stays bit-identical for every assignment and thread count.

namespace DistTrain.Core.Training;

// The tree is summed in two places only: BlockTree (any tiling of aligned blocks: local mode's threads, a step's
// workers, a worker's pieces) and PairwiseTreeReducer (the leaves of one block streamed through a stack, so a block of
// 2^k shards needs k+1 buffers). The tests hold the definition above as a plain loop to check both against.
public static class GradientReduction
{
    /// <summary>Largest power-of-two block size (in shards) that still gives at least <paramref name="minBlocks"/> blocks.</summary>
    public static int BlockSizeFor(int shardCount, int minBlocks)
    {
        int block = 1;
        while (block * 2 <= shardCount && (shardCount + block * 2 - 1) / (block * 2) >= minBlocks) block *= 2;
        return block;
    }

    public static bool IsAlignedBlock(int firstShard, int shardCount, int totalShards) =>
        shardCount >= 1 && firstShard >= 0 && firstShard + shardCount <= totalShards &&
        (System.Numerics.BitOperations.IsPow2(shardCount) ? firstShard % shardCount == 0
            // A truncated final block: aligned to the next power of two and running to the end.
            : firstShard + shardCount == totalShards &&
              firstShard % (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)shardCount) == 0);
}

/// <summary>
/// Streams the leaves of one aligned block through the tree with a stack of partial sums (a binary counter), so a
/// block of 2^k shards needs k+1 buffers instead of 2^k; the same sums as <see cref="BlockTree"/> over single shards.
/// </summary>
public sealed class PairwiseTreeReducer
{
    private readonly float[][] _stack;
    private readonly int[] _levels;
    private readonly int _length;
    private int _count;
    private float[]? _root;

    public PairwiseTreeReducer(int length, int maxLeaves)
    {
        _length = length;
        int depth = 1 + System.Numerics.BitOperations.Log2((uint)Math.Max(1, maxLeaves)) + 1;
        _stack = new float[depth][];
        for (int i = 1; i < depth; i++) _stack[i] = new float[length];
        _levels = new int[depth];
    }

    /// <summary>Starts a block whose final sum is to end up in <paramref name="root"/>.</summary>
    public void Begin(float[] root)
    {
        _root = root;
        _stack[0] = root;
        _count = 0;
    }

    /// <summary>The buffer the next leaf must be written into (fully overwritten by the caller).</summary>
    public Span<float> NextLeaf() => _stack[_count].AsSpan(0, _length);

    /// <summary>Commits the leaf just written and folds every completed pair.</summary>
    public void CommitLeaf()
    {
        _levels[_count++] = 0;
        while (_count >= 2 && _levels[_count - 1] == _levels[_count - 2])
        {
            Fold();
            _levels[_count - 1]++;
        }
    }

    /// <summary>Folds what remains (a truncated block) and returns the root buffer holding the block's sum.</summary>
    public float[] Finish()
    {
        while (_count >= 2) Fold();
        return _root ?? throw new InvalidOperationException("Begin was not called");
    }

    private void Fold()
    {
        var below = _stack[_count - 2].AsSpan(0, _length);
        Kernels.ElementWise.Add(below, _stack[_count - 1].AsSpan(0, _length), below);
        _count--;
    }
}
