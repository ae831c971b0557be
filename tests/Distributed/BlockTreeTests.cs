// BlockTree against the reference tree (ReferenceTree.ReduceInPlace): any tiling of aligned blocks, however uneven,
// must give the bit-identical sum.
using DistTrain.Core.Training;

namespace DistTrain.Tests.Distributed;

public class BlockTreeTests
{
    [Theory]
    [InlineData(1)] [InlineData(2)] [InlineData(3)] [InlineData(7)] [InlineData(8)] [InlineData(9)]
    [InlineData(15)] [InlineData(17)] [InlineData(33)]
    public void AnyAlignedTilingMatchesTheShardTree(int shards)
    {
        const int length = 37;
        var random = new Random(shards);
        var leaves = Enumerable.Range(0, shards)
            .Select(_ => Enumerable.Range(0, length).Select(_ => (float)(random.NextDouble() * 2e3 - 1e3)).ToArray()).ToArray();
        var reference = leaves.Select(l => (float[])l.Clone()).ToList();
        DistTrain.Tests.Core.ReferenceTree.ReduceInPlace(reference, shards, length);

        for (int trial = 0; trial < 20; trial++)
        {
            // Random contiguous runs, each decomposed into aligned blocks, each block reduced shard by shard.
            var cuts = Enumerable.Range(1, shards - 1).Where(_ => random.Next(3) == 0).Prepend(0).Append(shards).ToList();
            var blocks = new List<(int, int, float[])>();
            for (int r = 0; r + 1 < cuts.Count; r++)
                foreach (var (first, count) in BlockTree.Decompose(cuts[r], cuts[r + 1], shards))
                {
                    Assert.True(GradientReduction.IsAlignedBlock(first, count, shards));
                    var sum = new float[length];
                    var reducer = new PairwiseTreeReducer(length, count);
                    reducer.Begin(sum);
                    for (int s = first; s < first + count; s++)
                    {
                        leaves[s].CopyTo(reducer.NextLeaf());
                        reducer.CommitLeaf();
                    }
                    reducer.Finish();
                    blocks.Add((first, count, sum));
                }
            // Into a buffer of its own: the same bits, and the blocks are left as Complete would leave them.
            var copies = blocks.Select(b => (b.Item1, b.Item2, (float[])b.Item3.Clone())).ToList();
            var into = new float[length];
            BlockTree.CompleteInto(copies, shards, into);
            Assert.Equal(reference[0].Select(BitConverter.SingleToInt32Bits), into.Select(BitConverter.SingleToInt32Bits));
            // Divided in the root's pass: the bits of dividing the sum afterwards (a single block is divided as copied).
            foreach (int divisor in new[] { 2, 3, 64, 1000 })
            {
                var mean = new float[length];
                BlockTree.CompleteInto(blocks.Select(b => (b.Item1, b.Item2, (float[])b.Item3.Clone())).ToList(), shards, mean, divisor);
                Assert.Equal(reference[0].Select(v => BitConverter.SingleToInt32Bits(v / divisor)), mean.Select(BitConverter.SingleToInt32Bits));
            }
            var total = BlockTree.Complete(blocks, shards, length);
            Assert.Equal(reference[0], total);
            if (blocks.Count > 1) Assert.Equal(blocks.Skip(1).Select(b => b.Item3), copies.Skip(1).Select(b => b.Item3));
        }
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 64)]
    [InlineData(3, 100)]
    [InlineData(8, 1)]
    [InlineData(5, 128)]
    public void TheSlicesSquaresTakenInTheLastPassHaveClippingsBits(int shards, int divisor)
    {
        // Slices shorter than, equal to and longer than Clipping's 32 lanes and the pass's 8192-value pieces, and empty.
        int[] lengths = [1, 31, 32, 33, 0, 8192, 8192 + 31, 3 * 8192 + 64, 7, 20000];
        int length = lengths.Sum();
        var slices = new (int Offset, int Length)[lengths.Length];
        for (int k = 0, at = 0; k < lengths.Length; at += lengths[k], k++) slices[k] = (at, lengths[k]);
        var random = new Random(shards * 1000 + divisor);
        var blocks = new List<(int, int, float[])>();
        foreach (var (first, count) in BlockTree.Decompose(0, shards, shards))
            blocks.Add((first, count, Enumerable.Range(0, length).Select(_ => (float)(random.NextDouble() * 2e3 - 1e3)).ToArray()));
        var expected = new float[length];
        BlockTree.CompleteInto(blocks.Select(b => (b.Item1, b.Item2, (float[])b.Item3.Clone())).ToList(), shards, expected, divisor);

        var mean = new float[length];
        var squares = new double[slices.Length];
        BlockTree.CompleteInto(blocks, shards, mean, divisor, slices, squares);
        Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), mean.Select(BitConverter.SingleToInt32Bits));
        var norms = new double[slices.Length];
        var fromSquares = new double[slices.Length];
        double global = Clipping.LayerAndGlobalNorms(mean, slices, norms);
        Assert.Equal(BitConverter.DoubleToInt64Bits(global), BitConverter.DoubleToInt64Bits(Clipping.NormsFromSquares(squares, fromSquares)));
        Assert.Equal(norms.Select(BitConverter.DoubleToInt64Bits), fromSquares.Select(BitConverter.DoubleToInt64Bits));
        // And each against a float64 sum of squares of its slice.
        for (int k = 0; k < slices.Length; k++)
        {
            double reference = 0;
            foreach (float v in mean.AsSpan(slices[k].Offset, slices[k].Length)) reference += (double)v * v;
            Assert.Equal(reference, squares[k], reference * 1e-12);
        }
    }

    [Theory]
    [InlineData(1, 1)] [InlineData(2, 128)] [InlineData(3, 1)] [InlineData(5, 100)] [InlineData(8, 64)] [InlineData(9, 3)]
    public void BlocksStillInBfloat16GiveTheBitsOfDecodingThemFirst(int shards, int divisor)
    {
        // Longer than a piece of the pass, with a tail, so pieces and the tail both decode.
        const int length = 2 * 8192 + 77;
        var random = new Random(shards * 31 + divisor);
        for (int trial = 0; trial < 6; trial++)
        {
            var cuts = Enumerable.Range(1, shards - 1).Where(_ => random.Next(2) == 0).Prepend(0).Append(shards).ToList();
            var blocks = new List<(int, int, float[])>();
            var encoded = new List<ReadOnlyMemory<byte>>();
            for (int r = 0; r + 1 < cuts.Count; r++)
                foreach (var (first, count) in BlockTree.Decompose(cuts[r], cuts[r + 1], shards))
                {
                    // Values a bfloat16 holds exactly (as a worker's rounded shard sums are), signed zeros and ±∞ among them.
                    var sum = Enumerable.Range(0, length).Select(_ => DistTrain.Core.Kernels.BFloat16.Round((float)(random.NextDouble() * 2e3 - 1e3))).ToArray();
                    sum[random.Next(length)] = -0f;
                    blocks.Add((first, count, sum));
                    var bits = new ushort[length];
                    DistTrain.Core.Kernels.BFloat16.Encode(sum, bits);
                    // Single shards only, and only some of them: the tree mixes both kinds.
                    encoded.Add(count == 1 && random.Next(3) > 0 ? System.Runtime.InteropServices.MemoryMarshal.AsBytes(bits.AsSpan()).ToArray() : default);
                }
            var slices = new (int, int)[] { (0, 100), (100, 8192), (8292, length - 8292) };
            var expected = new float[length];
            var expectedSquares = new double[3];
            BlockTree.CompleteInto(blocks.Select(b => (b.Item1, b.Item2, (float[])b.Item3.Clone())).ToList(), shards, expected, divisor, slices, expectedSquares);
            // The encoded blocks' buffers hold garbage: the tree must read their bits.
            var scratch = blocks.Select((b, i) => (b.Item1, b.Item2, encoded[i].IsEmpty ? (float[])b.Item3.Clone()
                : Enumerable.Repeat(float.NaN, length).ToArray())).ToList();
            var mean = new float[length];
            var squares = new double[3];
            BlockTree.CompleteInto(scratch, shards, mean, divisor, slices, squares, encoded);
            Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), mean.Select(BitConverter.SingleToInt32Bits));
            Assert.Equal(expectedSquares.Select(BitConverter.DoubleToInt64Bits), squares.Select(BitConverter.DoubleToInt64Bits));
        }
    }

    [Fact]
    public void ABfloat16BlockOfTheWrongShapeIsRefused()
    {
        var blocks = new List<(int, int, float[])> { (0, 2, new float[10]) };
        Assert.Throws<ArgumentException>(() => BlockTree.CompleteInto(blocks, 2, new float[10], 1, default, default, [new byte[20]]));
        var single = new List<(int, int, float[])> { (0, 1, new float[10]) };
        Assert.Throws<ArgumentException>(() => BlockTree.CompleteInto(single, 1, new float[10], 1, default, default, [new byte[18]]));
        Assert.Throws<ArgumentException>(() => BlockTree.CompleteInto(single, 1, new float[10], 1, default, default, []));
    }

    [Fact]
    public void SlicesThatDoNotTileTheVectorAreRefused()
    {
        var blocks = new List<(int, int, float[])> { (0, 1, new float[10]) };
        Assert.Throws<ArgumentException>(() => BlockTree.CompleteInto(blocks, 1, new float[10], 1, [(0, 4), (5, 5)], new double[2]));
        Assert.Throws<ArgumentException>(() => BlockTree.CompleteInto(blocks, 1, new float[10], 1, [(0, 4), (4, 5)], new double[2]));
        Assert.Throws<ArgumentException>(() => BlockTree.CompleteInto(blocks, 1, new float[10], 1, [(0, 10)], new double[2]));
    }

    [Fact]
    public void RejectsATilingWithAGap()
    {
        var blocks = new List<(int, int, float[])> { (0, 2, new float[1]), (3, 1, new float[1]) };
        Assert.Throws<InvalidOperationException>(() => BlockTree.Complete(blocks, 4, 1));
    }
}
