// Completes the fixed pairwise tree (GradientReduction) from the sums of any tiling of aligned blocks, even blocks
// of different sizes: node (i, k) covers shards [i, min(i + 2^k, n)) and is left + right, or its left child
// passed up unchanged when the right one is empty. Coordinator and workers use it, so the sum is bit-identical to
// reducing shard by shard however the shards were split among executors.
using System.Numerics;

namespace DistTrain.Core.Training;

public static class BlockTree
{
    /// <summary>
    /// Sums <paramref name="blocks"/> (sorted by first shard, tiling the aligned node they make up exactly) along
    /// the tree of <paramref name="totalShards"/> leaves; returns the buffer holding the sum — the first block's,
    /// updated in place. Throws InvalidOperationException when the blocks are not such a tiling.
    /// </summary>
    public static float[] Complete(IReadOnlyList<(int FirstShard, int ShardCount, float[] Sum)> blocks,
        int totalShards, int length) => Reduce(blocks, totalShards, length, default, out _, new RootPass(1, default, default));

    /// <summary>
    /// <see cref="Complete"/> with the sum written to <paramref name="destination"/> (its length is the vectors'):
    /// the root's addition writes there instead of into the first block, which saves copying the sum out (a
    /// single block is copied). The blocks' buffers below the root are updated in place as by Complete. With a
    /// <paramref name="divisor"/> above 1 the destination receives the sum divided by it, in the root's pass (the bits
    /// of dividing the sum afterwards: ElementWise.DivideByCount), which saves a pass over the vector. With
    /// <paramref name="slices"/> (else empty) tiling the destination in order, each slice's sum of squares of what the
    /// destination receives goes to <paramref name="squares"/>, taken in the same pass while each piece is in cache, with
    /// the bits of Clipping's (see <see cref="Clipping.NormsFromSquares"/>): that saves the norms' pass too.
    /// </summary>
    public static void CompleteInto(IReadOnlyList<(int FirstShard, int ShardCount, float[] Sum)> blocks,
        int totalShards, Span<float> destination, int divisor = 1,
        ReadOnlySpan<(int Offset, int Length)> slices = default, Span<double> squares = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(divisor, 1);
        CheckTiling(slices, squares, destination.Length);
        var pass = new RootPass(divisor, slices, squares);
        var root = Reduce(blocks, totalShards, destination.Length, destination, out bool written, pass);
        if (!written) pass.Run(root.AsSpan(0, destination.Length), default, destination);
    }

    private static void CheckTiling(ReadOnlySpan<(int Offset, int Length)> slices, Span<double> squares, int length)
    {
        if (slices.IsEmpty) return;
        if (squares.Length != slices.Length)
            throw new ArgumentException($"{squares.Length} sums of squares for {slices.Length} slices", nameof(squares));
        int end = 0;
        foreach (var (offset, count) in slices)
        {
            if (offset != end || count < 0) throw new ArgumentException($"the slices do not tile the vector at {end}", nameof(slices));
            end += count;
        }
        if (end != length) throw new ArgumentException($"the slices cover {end} of {length} values", nameof(slices));
    }

    /// <summary>
    /// The root's pass: destination = (left [+ right]) / divisor, piece by piece, each piece's squares added to its
    /// slice's sum while it is in cache when slices are asked for. An empty right: the root is one block (copied or divided).
    /// </summary>
    private readonly ref struct RootPass(int divisor, ReadOnlySpan<(int Offset, int Length)> slices, Span<double> squares)
    {
        /// <summary>Values per piece: 32 KiB of the result, a multiple of Clipping's lanes.</summary>
        private const int Piece = 8 * 1024;
        private readonly int _divisor = divisor;
        private readonly ReadOnlySpan<(int Offset, int Length)> _slices = slices;
        private readonly Span<double> _squares = squares;

        public void Run(ReadOnlySpan<float> left, ReadOnlySpan<float> right, Span<float> into)
        {
            if (_slices.IsEmpty)
            {
                Apply(left, right, into);
                return;
            }
            Span<double> lanes = stackalloc double[Clipping.SquareSums.Lanes];
            for (int k = 0; k < _slices.Length; k++)
            {
                var (offset, length) = _slices[k];
                var sums = new Clipping.SquareSums(lanes);
                int end = offset + length, bulkEnd = offset + length / Clipping.SquareSums.Lanes * Clipping.SquareSums.Lanes;
                for (int start = offset; start < end; start += Piece)
                {
                    int n = Math.Min(Piece, end - start);
                    Apply(left.Slice(start, n), right.IsEmpty ? default : right.Slice(start, n), into.Slice(start, n));
                    int bulk = Math.Min(start + n, bulkEnd) - start;
                    if (bulk > 0) sums.Add(into.Slice(start, bulk));
                }
                _squares[k] = sums.Finish(into[bulkEnd..end]);
            }
        }

        private void Apply(ReadOnlySpan<float> left, ReadOnlySpan<float> right, Span<float> into)
        {
            if (!right.IsEmpty)
            {
                if (_divisor > 1) Kernels.ElementWise.AddThenDivideByCount(left, right, _divisor, into);
                else Kernels.ElementWise.Add(left, right, into);
            }
            else if (_divisor > 1) Kernels.ElementWise.DivideByCount(left, _divisor, into);
            else left.CopyTo(into);
        }
    }

    private static float[] Reduce(IReadOnlyList<(int FirstShard, int ShardCount, float[] Sum)> blocks,
        int totalShards, int length, Span<float> destination, out bool written, in RootPass pass)
    {
        if (blocks.Count == 0) throw new InvalidOperationException("no blocks to reduce");
        int first = blocks[0].FirstShard;
        int last = blocks[^1].FirstShard + blocks[^1].ShardCount;
        int span = last - first;
        int level = BitOperations.Log2(BitOperations.RoundUpToPowerOf2((uint)span));
        if (!GradientReduction.IsAlignedBlock(first, span, totalShards))
            throw new InvalidOperationException($"blocks cover shards [{first}, {last}), which is not an aligned node of {totalShards}");
        int cursor = 0;
        var root = Sum(blocks, ref cursor, first, level, totalShards, length, destination, out written, pass);
        if (cursor != blocks.Count)
            throw new InvalidOperationException($"blocks overlap or are out of order after shard {blocks[cursor].FirstShard}");
        return root;
    }

    /// <summary>
    /// The node's sum: a block's buffer, or its left child's updated in place — or, when <paramref name="into"/> is
    /// not empty and the node adds, written there instead (<paramref name="written"/>) by <paramref name="pass"/>.
    /// </summary>
    private static float[] Sum(IReadOnlyList<(int FirstShard, int ShardCount, float[] Sum)> blocks, ref int cursor,
        int first, int level, int total, int length, Span<float> into, out bool written, in RootPass pass)
    {
        written = false;
        int half = level > 0 ? 1 << (level - 1) : 0;
        // Right child empty (the truncated end of the batch): the node is its left child, no arithmetic.
        if (level > 0 && first + half >= total) return Sum(blocks, ref cursor, first, level - 1, total, length, into, out written, pass);
        if (cursor >= blocks.Count)
            throw new InvalidOperationException($"no block covers shard {first}");
        var block = blocks[cursor];
        int covered = Math.Min(1 << level, total - first);
        if (block.FirstShard == first && block.ShardCount == covered)
        {
            cursor++;
            return block.Sum;
        }
        if (level == 0 || block.FirstShard != first || block.ShardCount > covered)
            throw new InvalidOperationException(
                $"block [{block.FirstShard}, {block.FirstShard + block.ShardCount}) is not aligned to the tree at shard {first}");
        var below = new RootPass(1, default, default);
        var left = Sum(blocks, ref cursor, first, level - 1, total, length, default, out _, below);
        var right = Sum(blocks, ref cursor, first + half, level - 1, total, length, default, out _, below);
        written = !into.IsEmpty;
        if (written) pass.Run(left.AsSpan(0, length), right.AsSpan(0, length), into);
        else Kernels.ElementWise.Add(left.AsSpan(0, length), right.AsSpan(0, length), left.AsSpan(0, length));
        return left;
    }

    /// <summary>
    /// The maximal aligned blocks tiling shards [start, end) of a batch of <paramref name="totalShards"/>: the fewest
    /// buffers a contiguous run of shards can be returned in.
    /// </summary>
    public static List<(int FirstShard, int ShardCount)> Decompose(int start, int end, int totalShards)
    {
        if (start < 0 || end > totalShards || start > end)
            throw new ArgumentOutOfRangeException(nameof(start), $"[{start}, {end}) is not inside 0..{totalShards}");
        var blocks = new List<(int, int)>();
        int position = start;
        while (position < end)
        {
            int remaining = end - position;
            // A truncated last block is one node when it runs to the end of the batch and is aligned.
            if (end == totalShards && GradientReduction.IsAlignedBlock(position, remaining, totalShards))
            {
                blocks.Add((position, remaining));
                break;
            }
            int size = 1;
            while (position % (size * 2) == 0 && size * 2 <= remaining) size *= 2;
            blocks.Add((position, size));
            position += size;
        }
        return blocks;
    }
}
