// Gradient norms and clipping: the norm against float64 references (including the documented summation
// order, bit for bit), clipping above and below the threshold, and non-finite gradients.
using DistTrain.Core.Training;

namespace DistTrain.Tests.Optim;

public class ClippingTests
{
    public static TheoryData<int> Lengths => [0, 1, 7, 8, 9, 15, 16, 17, 24, 25, 31, 32, 33, 63, 64, 65, 1031, 100_003];

    private static float[] Random(int n, int seed, float scale = 1f) =>
        OptimizerVariants.Uniform(new Random(seed), n, scale);

    private static double NaiveNorm(ReadOnlySpan<float> g)
    {
        double sum = 0;
        foreach (float x in g) sum += (double)x * x;
        return Math.Sqrt(sum);
    }

    /// <summary>The order Clipping.GlobalNorm documents: 32 partial sums by i mod 32, pairwise, then the tail.</summary>
    private static double DocumentedOrderNorm(float[] g)
    {
        var lanes = new double[32];
        int body = g.Length / 32 * 32;
        for (int i = 0; i < body; i++) lanes[i % 32] += (double)g[i] * g[i];
        var level = lanes.ToList();
        while (level.Count > 1) level = [.. Enumerable.Range(0, level.Count / 2).Select(k => level[2 * k] + level[2 * k + 1])];
        double sum = level[0];
        for (int i = body; i < g.Length; i++) sum += (double)g[i] * g[i];
        return Math.Sqrt(sum);
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void GlobalNormMatchesFloat64ReferenceAndItsDocumentedOrder(int n)
    {
        float[] g = Random(n, n, 3f);
        double norm = Clipping.GlobalNorm(g);
        Assert.True(Math.Abs(norm - NaiveNorm(g)) <= 1e-12 * NaiveNorm(g));
        Assert.Equal(BitConverter.DoubleToInt64Bits(DocumentedOrderNorm(g)), BitConverter.DoubleToInt64Bits(norm));
    }

    [Fact]
    public void GlobalNormDoesNotOverflowForLargeFiniteFloats()
    {
        float[] g = [.. Enumerable.Repeat(float.MaxValue, 33)];
        Assert.Equal(Math.Sqrt(33) * float.MaxValue, Clipping.GlobalNorm(g), 1e-9 * float.MaxValue);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(17)]
    [InlineData(1031)]
    public void ClipScalesToExactlyMaxNormWhenAbove(int n)
    {
        float[] g = Random(n, 5, 10f);
        float[] original = (float[])g.Clone();
        double before = NaiveNorm(g);
        double maxNorm = before / 7;
        double returned = Clipping.ClipByGlobalNorm(g, maxNorm);
        Assert.Equal(Clipping.GlobalNorm(original), returned);
        Assert.True(Math.Abs(NaiveNorm(g) - maxNorm) <= 1e-6 * maxNorm, $"clipped norm {NaiveNorm(g)} vs {maxNorm}");
        float scale = (float)(maxNorm / returned);
        for (int i = 0; i < n; i++) Assert.Equal(original[i] * scale, g[i]); // direction kept
    }

    [Theory]
    [InlineData(10.0)]       // below the threshold
    [InlineData(0.0)]        // off
    [InlineData(-1.0)]       // off
    [InlineData(double.NaN)] // off
    public void ClipLeavesGradientUntouchedWhenBelowOrOff(double maxNorm)
    {
        float[] g = Random(17, 9, 0.5f); // norm ≈ 1.2
        float[] original = (float[])g.Clone();
        Assert.Equal(Clipping.GlobalNorm(original), Clipping.ClipByGlobalNorm(g, maxNorm));
        Assert.Equal(original, g);
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public void NonFiniteGradientIsDetectedAndLeftForTheCallerToSkip(float bad)
    {
        for (int n = 1; n <= 40; n++)
            for (int at = 0; at < n; at++)
            {
                float[] g = Random(n, n);
                g[at] = bad;
                float[] original = (float[])g.Clone();
                Assert.False(Clipping.AllFinite(g));
                double norm = Clipping.ClipByGlobalNorm(g, 1e-3);
                Assert.False(double.IsFinite(norm));
                Assert.Equal(original, g);
            }
        Assert.True(Clipping.AllFinite(Random(1031, 1)));
        Assert.True(Clipping.AllFinite([]));
    }

    [Fact]
    public void LayerNormsAreTheNormsOfTheSlices()
    {
        float[] g = Random(300, 2);
        (int, int)[] slices = [(0, 100), (100, 7), (107, 193), (5, 0)];
        var norms = new double[slices.Length];
        Clipping.LayerNorms(g, slices, norms);
        for (int k = 0; k < slices.Length; k++)
            Assert.Equal(Clipping.GlobalNorm(g.AsSpan(slices[k].Item1, slices[k].Item2)), norms[k]);
        Assert.Equal(0.0, norms[3]);
        Assert.True(Math.Abs(NaiveNorm(g.AsSpan(100, 7)) - norms[1]) <= 1e-12 * norms[1]);
        Assert.Throws<ArgumentException>(() => Clipping.LayerNorms(g, slices, new double[2]));
    }

    [Fact]
    public void LayerAndGlobalNormsComeFromOnePassOverTilingSlices()
    {
        float[] g = Random(1000, 4, 2f);
        (int, int)[] tiling = [(0, 333), (333, 0), (333, 64), (397, 603)];
        var norms = new double[tiling.Length];
        double global = Clipping.LayerAndGlobalNorms(g, tiling, norms);
        var expected = new double[tiling.Length];
        Clipping.LayerNorms(g, tiling, expected);
        Assert.Equal(expected, norms);
        // The global norm: the slices' documented-order sums of squares, added in slice order.
        double squares = 0;
        foreach (var (offset, length) in tiling)
        {
            double norm = DocumentedOrderNorm(g[offset..(offset + length)]);
            squares += norm * norm;
        }
        Assert.True(Math.Abs(NaiveNorm(g) - global) <= 1e-12 * global);
        Assert.Equal(Math.Sqrt(squares), global, 1e-12 * global);

        // Slices that leave a gap, overlap or stop short: the norm of the whole vector, as GlobalNorm sums it.
        foreach ((int, int)[] partial in new[] { [(0, 500), (600, 400)], [(0, 600), (500, 500)], new[] { (0, 999) } })
        {
            var some = new double[partial.Length];
            Assert.Equal(Clipping.GlobalNorm(g), Clipping.LayerAndGlobalNorms(g, partial, some));
            Assert.Equal(Clipping.GlobalNorm(g.AsSpan(partial[0].Item1, partial[0].Item2)), some[0]);
        }
        Assert.Throws<ArgumentException>(() => Clipping.LayerAndGlobalNorms(g, tiling, new double[2]));
    }

    [Fact]
    public void SquareSumsFedInPiecesHaveTheBitsOfTheWholeVector()
    {
        Span<double> lanes = stackalloc double[Clipping.SquareSums.Lanes];
        foreach (int n in new[] { 0, 1, 31, 32, 33, 95, 96, 1000, 8191, 8192, 8193, 16_415, 100_003 })
        {
            float[] g = Random(n, n + 1, 5f);
            var sums = new Clipping.SquareSums(lanes);
            int bulk = n / 32 * 32, at = 0;
            // Uneven pieces, each a multiple of 32.
            for (int piece = 32; at < bulk; piece = piece * 3 % 4096 + 32)
            {
                int length = Math.Min(piece, bulk - at);
                sums.Add(g.AsSpan(at, length));
                at += length;
            }
            Assert.Equal(BitConverter.DoubleToInt64Bits(Clipping.GlobalNorm(g)), BitConverter.DoubleToInt64Bits(Math.Sqrt(sums.Finish(g.AsSpan(bulk)))));
        }
        Assert.Throws<ArgumentException>(() => new Clipping.SquareSums(new double[31]));
        Assert.Throws<ArgumentException>(() => new Clipping.SquareSums(new double[32]).Add(new float[33]));
        Assert.Throws<ArgumentException>(() => new Clipping.SquareSums(new double[32]).Finish(new float[32]));
    }

    [Fact]
    public void ABfloat16RepliesSquaresAreThoseOfItsDecodedVector()
    {
        // The coordinator's check of a one-shard bf16 block (StepTransport.SumOfSquaresBf16): the vector is never decoded
        // whole, and its norm must be the one Clipping measures on the decoded vector; NaN and ±∞ patterns included.
        foreach (int n in new[] { 0, 5, 32, 8191, 8192, 8224, 16384, 20_000, 235_146 })
        {
            var random = new Random(n);
            var bits = Enumerable.Range(0, n).Select(_ => (ushort)(random.Next(0, 0x7F80) | (random.Next(2) << 15))).ToArray();
            var expected = new float[n];
            DistTrain.Core.Kernels.BFloat16.Decode(bits, expected);
            double squares = DistTrain.Coordinator.Distributed.StepTransport.SumOfSquaresBf16(bits);
            Assert.Equal(BitConverter.DoubleToInt64Bits(Clipping.GlobalNorm(expected)), BitConverter.DoubleToInt64Bits(Math.Sqrt(squares)));
            if (n < 40) continue;
            foreach (ushort special in new ushort[] { 0x7F80, 0xFF80, 0x7FC1 })
            {
                var poisoned = (ushort[])bits.Clone();
                poisoned[n - 3] = special;
                Assert.False(double.IsFinite(DistTrain.Coordinator.Distributed.StepTransport.SumOfSquaresBf16(poisoned)));
            }
        }
    }

    [Fact]
    public void ClipToNormScalesOnlyAboveTheThreshold()
    {
        float[] g = Random(100, 5), original = (float[])g.Clone();
        double norm = Clipping.GlobalNorm(g);
        Assert.False(Clipping.ClipToNorm(g, norm, norm));
        Assert.False(Clipping.ClipToNorm(g, norm, 0));
        Assert.False(Clipping.ClipToNorm(g, double.NaN, 1));
        Assert.Equal(original, g);
        Assert.True(Clipping.ClipToNorm(g, norm, norm / 4));
        Assert.Equal(norm / 4, Clipping.GlobalNorm(g), 1e-6 * norm);
    }
}
