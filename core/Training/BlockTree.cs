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
        int totalShards, int length)
    {
        var root = Reduce(blocks, null, totalShards, length, default, out _, new RootPass(1, default, default));
        return root.Buffer;
    }

    /// <summary>
    /// <see cref="Complete"/> with the sum written to <paramref name="destination"/> (its length is the vectors'):
    /// the root's addition writes there instead of into the first block, which saves copying the sum out (a
    /// single block is copied). The blocks' buffers below the root are updated in place as by Complete. With a
    /// <paramref name="divisor"/> above 1 the destination receives the sum divided by it, in the root's pass (the bits
    /// of dividing the sum afterwards: ElementWise.DivideByCount), which saves a pass over the vector. With
    /// <paramref name="slices"/> (else empty) tiling the destination in order, each slice's sum of squares of what the
    /// destination receives goes to <paramref name="squares"/>, taken in the same pass while each piece is in cache, with
    /// the bits of Clipping's (see <see cref="Clipping.NormsFromSquares"/>): that saves the norms' pass too.
    /// <paramref name="bf16"/>, when given (one entry per block), holds the blocks that are still bfloat16 vectors (2
    /// bytes a value, as BFloat16.Encode writes them; empty for a float block): they are decoded piece by piece as the
    /// tree reads them, into a scratch piece in cache, never into a vector of their own — the bits of decoding them first,
    /// which is exact. Such a block's float buffer is scratch the tree may write a sum into.
    /// </summary>
    public static void CompleteInto(IReadOnlyList<(int FirstShard, int ShardCount, float[] Sum)> blocks,
        int totalShards, Span<float> destination, int divisor = 1,
        ReadOnlySpan<(int Offset, int Length)> slices = default, Span<double> squares = default,
        IReadOnlyList<ReadOnlyMemory<byte>>? bf16 = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(divisor, 1);
        CheckTiling(slices, squares, destination.Length);
        if (bf16 is not null)
        {
            if (bf16.Count != blocks.Count) throw new ArgumentException($"{bf16.Count} encodings for {blocks.Count} blocks", nameof(bf16));
            for (int i = 0; i < bf16.Count; i++)
                if (!bf16[i].IsEmpty && (blocks[i].ShardCount != 1 || bf16[i].Length != 2 * destination.Length))
                    throw new ArgumentException($"block {i}'s bfloat16 vector is not one shard of {destination.Length} values", nameof(bf16));
        }
        var pass = new RootPass(divisor, slices, squares);
        var root = Reduce(blocks, bf16, totalShards, destination.Length, destination, out bool written, pass);
        if (!written) pass.Run(root, default, destination);
    }

    private static void CheckTiling(ReadOnlySpan<(int Offset, int Length)> slices, Span<double> squares, int length)
    {
        if (slices.IsEmpty) return;
        if (squares.Length != slices.Length)
            throw new ArgumentException($"{squares.Length} sums of squares for {slices.Length} slices", nameof(squares));
        if (!Clipping.Tiles(slices, length)) throw new ArgumentException($"the slices do not tile the vector of {length} values", nameof(slices));
    }

    /// <summary>A node's sum: in its float buffer, or (a leaf block not yet read) still bfloat16 in <see cref="Bits"/>.</summary>
    private readonly struct Operand(float[] buffer, ReadOnlyMemory<byte> bits)
    {
        public float[] Buffer { get; } = buffer;
        public ReadOnlyMemory<byte> Bits { get; } = bits;
        public bool IsEmpty => Buffer is null;

        /// <summary>Values [start, start + count): the buffer's, or decoded into <paramref name="scratch"/>.</summary>
        public ReadOnlySpan<float> Piece(int start, int count, Span<float> scratch)
        {
            if (Bits.IsEmpty) return Buffer.AsSpan(start, count);
            var piece = scratch[..count];
            Kernels.BFloat16.Decode(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(Bits.Span.Slice(2 * start, 2 * count)), piece);
            return piece;
        }
    }

    /// <summary>Values a pass handles at a time: 32 KiB of floats, in cache, and a multiple of Clipping's lanes.</summary>
    private const int Piece = 8 * 1024;

    // Two decoded pieces (left and right operand) per thread that completes a tree.
    [ThreadStatic] private static float[]? t_scratch;

    private static Span<float> Scratch(int which) => (t_scratch ??= new float[2 * Piece]).AsSpan(which * Piece, Piece);

    /// <summary>
    /// The root's pass: destination = (left [+ right]) / divisor, piece by piece, each piece's squares added to its
    /// slice's sum while it is in cache when slices are asked for. An empty right: the root is one block (copied or divided).
    /// </summary>
    private readonly ref struct RootPass(int divisor, ReadOnlySpan<(int Offset, int Length)> slices, Span<double> squares)
    {
        private readonly int _divisor = divisor;
        private readonly ReadOnlySpan<(int Offset, int Length)> _slices = slices;
        private readonly Span<double> _squares = squares;

        public void Run(Operand left, Operand right, Span<float> into)
        {
            if (_slices.IsEmpty)
            {
                if (left.Bits.IsEmpty && (right.IsEmpty || right.Bits.IsEmpty))
                {
                    Apply(left.Buffer.AsSpan(0, into.Length), right.IsEmpty ? default : right.Buffer.AsSpan(0, into.Length), into);
                    return;
                }
                for (int start = 0; start < into.Length; start += Piece)
                    ApplyPiece(left, right, into, start, Math.Min(Piece, into.Length - start));
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
                    ApplyPiece(left, right, into, start, n);
                    int bulk = Math.Min(start + n, bulkEnd) - start;
                    if (bulk > 0) sums.Add(into.Slice(start, bulk));
                }
                _squares[k] = sums.Finish(into[bulkEnd..end]);
            }
        }

        private void ApplyPiece(Operand left, Operand right, Span<float> into, int start, int n) =>
            Apply(left.Piece(start, n, Scratch(0)), right.IsEmpty ? default : right.Piece(start, n, Scratch(1)), into.Slice(start, n));

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

    private static Operand Reduce(IReadOnlyList<(int FirstShard, int ShardCount, float[] Sum)> blocks,
        IReadOnlyList<ReadOnlyMemory<byte>>? bf16, int totalShards, int length, Span<float> destination, out bool written,
        in RootPass pass)
    {
        if (blocks.Count == 0) throw new InvalidOperationException("no blocks to reduce");
        int first = blocks[0].FirstShard;
        int last = blocks[^1].FirstShard + blocks[^1].ShardCount;
        int span = last - first;
        int level = BitOperations.Log2(BitOperations.RoundUpToPowerOf2((uint)span));
        if (!GradientReduction.IsAlignedBlock(first, span, totalShards))
            throw new InvalidOperationException($"blocks cover shards [{first}, {last}), which is not an aligned node of {totalShards}");
        int cursor = 0;
        var root = Sum(blocks, bf16, ref cursor, first, level, totalShards, length, destination, out written, pass);
        if (cursor != blocks.Count)
            throw new InvalidOperationException($"blocks overlap or are out of order after shard {blocks[cursor].FirstShard}");
        return root;
    }

    /// <summary>
    /// The node's sum: a block (its buffer, or its bfloat16 vector), or its left child's buffer updated in place — or,
    /// when <paramref name="into"/> is not empty and the node adds, written there instead (<paramref name="written"/>)
    /// by <paramref name="pass"/>.
    /// </summary>
    private static Operand Sum(IReadOnlyList<(int FirstShard, int ShardCount, float[] Sum)> blocks,
        IReadOnlyList<ReadOnlyMemory<byte>>? bf16, ref int cursor, int first, int level, int total, int length,
        Span<float> into, out bool written, in RootPass pass)
    {
        written = false;
        int half = level > 0 ? 1 << (level - 1) : 0;
        // Right child empty (the truncated end of the batch): the node is its left child, no arithmetic.
        if (level > 0 && first + half >= total) return Sum(blocks, bf16, ref cursor, first, level - 1, total, length, into, out written, pass);
        if (cursor >= blocks.Count)
            throw new InvalidOperationException($"no block covers shard {first}");
        var block = blocks[cursor];
        int covered = Math.Min(1 << level, total - first);
        if (block.FirstShard == first && block.ShardCount == covered)
        {
            var bits = bf16 is null ? default : bf16[cursor];
            cursor++;
            return new Operand(block.Sum, bits);
        }
        if (level == 0 || block.FirstShard != first || block.ShardCount > covered)
            throw new InvalidOperationException(
                $"block [{block.FirstShard}, {block.FirstShard + block.ShardCount}) is not aligned to the tree at shard {first}");
        var below = new RootPass(1, default, default);
        var left = Sum(blocks, bf16, ref cursor, first, level - 1, total, length, default, out _, below);
        var right = Sum(blocks, bf16, ref cursor, first + half, level - 1, total, length, default, out _, below);
        written = !into.IsEmpty;
        if (written)
        {
            pass.Run(left, right, into);
            return left;
        }
        // Into the left child's buffer (an encoded block's is scratch): the sum is then a float operand.
        below.Run(left, right, left.Buffer.AsSpan(0, length));
        return new Operand(left.Buffer, default);
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
