// Gemm against a naive float64 reference on awkward shapes (around every block size and vector width), plus the
// determinism, allocation and concurrency promises. CI runs them again under DOTNET_EnableAVX512=0, DOTNET_EnableAVX2=0
// and DOTNET_EnableHWIntrinsic=0 (.ci/run).
using DistTrain.Core.Kernels;
using DistTrain.Tests.Infrastructure;
using Xunit.Abstractions;

namespace DistTrain.Tests.Kernels;

public class GemmTests(ITestOutputHelper output)
{
    public enum Variant { ABt, AtB, AB }

    // 1, primes, and one below/at/above MR (8), the vector widths (4, 8, 16) and NR (8, 16, 32).
    private static readonly int[] SmallSizes = [1, 3, 4, 5, 7, 8, 9, 13, 15, 16, 17, 31, 32, 33, 37];

    // One below/at/above MC (128), KC (256, also 2·KC and 3·KC splits), NC (1024), and the k-group of packed B.
    private static readonly (int M, int N, int K)[] BlockShapes =
    [
        (127, 33, 255), (128, 32, 256), (129, 31, 257), (257, 17, 40), (61, 9, 513), (9, 61, 769),
        (3, 1023, 9), (3, 1024, 5), (3, 1025, 7), (17, 1025, 300), (130, 65, 1), (1, 1, 1000),
    ];

    public static TheoryData<Variant> Variants => new() { Variant.ABt, Variant.AtB, Variant.AB };

    [Theory]
    [MemberData(nameof(Variants))]
    public void MatchesFloat64ReferenceOnSmallShapes(Variant variant)
    {
        output.WriteLine($"micro-kernel path: {GemmMicroKernels.Path}, MR={GemmMicroKernels.MR}, NR={GemmMicroKernels.NR}");
        var random = new Random(1);
        foreach (int m in SmallSizes)
            foreach (int n in SmallSizes)
            {
                int k = SmallSizes[random.Next(SmallSizes.Length)];
                CheckAgainstReference(variant, m, n, k, accumulate: (m + n) % 2 == 0, seed: m * 100 + n);
            }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void MatchesFloat64ReferenceAroundBlockSizes(Variant variant)
    {
        foreach (var (m, n, k) in BlockShapes)
        {
            CheckAgainstReference(variant, m, n, k, accumulate: false, seed: m + n + k);
            CheckAgainstReference(variant, m, n, k, accumulate: true, seed: m + n + k + 1);
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void ZeroSizesAreNoOpsAndEmptySumsZeroFill(Variant variant)
    {
        float[] c = [float.NaN, float.NaN, float.NaN, float.NaN, float.NaN, float.NaN];
        Multiply(variant, [], [], c, 2, 3, 0, accumulate: true, threads: 1);
        Assert.All(c, x => Assert.True(float.IsNaN(x)));
        Multiply(variant, [], [], c, 2, 3, 0, accumulate: false, threads: 2);
        Assert.All(c, x => Assert.Equal(0f, x));
        Multiply(variant, [], [1, 2], c, 0, 2, 1, accumulate: false, threads: 1);
        Multiply(variant, [1, 2], [], c, 2, 0, 1, accumulate: false, threads: 1);
        Assert.All(c, x => Assert.Equal(0f, x));
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void ThreadCountDoesNotChangeABit(Variant variant)
    {
        // Tall (split by rows, row blocks shared) and wide (split by columns) shapes, both with edge tiles and several
        // k-blocks, and a tall one whose B needs two column blocks (split by rows into slabs).
        foreach (var (m, n, k) in new[] { (333, 77, 300), (45, 1100, 530), (1001, 13, 700), (1100, 1030, 20) })
        {
            float[] a = RandomValues(m * k, 7), b = RandomValues(n * k, 8), initial = RandomValues(m * n, 9);
            var expected = new int[2][];
            foreach (int threads in new[] { 1, 2, 4 })
                foreach (bool accumulate in new[] { false, true })
                {
                    float[] c = (float[])initial.Clone();
                    Multiply(variant, a, b, c, m, n, k, accumulate, threads);
                    expected[accumulate ? 1 : 0] ??= Bits(c);
                    Assert.Equal(expected[accumulate ? 1 : 0], Bits(c));
                }
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void NarrowProductsEqualTheSameColumnsOfAWideOne(Variant variant)
    {
        // Up to 16 columns take the narrow tile (on AVX-512), wider products the wide one: every element must still
        // come out with the same bits, or local mode and a worker with another column split would disagree.
        const int m = 37, k = 300, wide = 40;
        float[] a = RandomValues(m * k, 21), b = RandomValues(wide * k, 22), initial = RandomValues(m * wide, 23);
        foreach (int narrow in new[] { 1, 10, 16, 17 })
            foreach (bool accumulate in new[] { false, true })
                foreach (int threads in new[] { 1, 2 })
                {
                    float[] cWide = (float[])initial.Clone();
                    Multiply(variant, a, b, cWide, m, wide, k, accumulate, threads);
                    // The first `narrow` columns of B (rows of B for A·Bᵀ) and of the initial C.
                    float[] bNarrow = variant == Variant.ABt ? b[..(narrow * k)]
                        : Enumerable.Range(0, k * narrow).Select(x => b[x / narrow * wide + x % narrow]).ToArray();
                    float[] cNarrow = Enumerable.Range(0, m * narrow).Select(x => initial[x / narrow * wide + x % narrow]).ToArray();
                    Multiply(variant, a, bNarrow, cNarrow, m, narrow, k, accumulate, threads);
                    var expected = Enumerable.Range(0, m * narrow).Select(x => cWide[x / narrow * wide + x % narrow]).ToArray();
                    Assert.Equal(Bits(expected), Bits(cNarrow));
                }
    }

    [Fact]
    public void SingleThreadedCallsAllocateNothingAfterWarmUp()
    {
        const int m = 70, n = 45, k = 300;
        float[] a = RandomValues(m * k, 1), b = RandomValues(n * k, 2), c = new float[m * n];
        Variant[] variants = Enum.GetValues<Variant>();
        Assert.Equal(0, Allocations.SteadyState(() =>
        {
            foreach (Variant variant in variants)
            {
                Multiply(variant, a, b, c, m, n, k, accumulate: false, threads: 1);
                Multiply(variant, a, b, c, m, n, k, accumulate: true, threads: 1);
            }
        }));
    }

    [Fact]
    public void TwoThreadedCallsAllocateNothingAfterWarmUp()
    {
        // Big enough to go parallel: split by rows (shared row blocks), by columns, and by rows into slabs.
        foreach (var (m, n, k) in new[] { (300, 70, 300), (40, 300, 400), (1100, 1030, 20) })
        {
            float[] a = RandomValues(m * k, 1), b = RandomValues(n * k, 2), c = new float[m * n];
            Variant[] variants = Enum.GetValues<Variant>();
            for (int warmUp = 0; warmUp < 3; warmUp++)
                foreach (Variant variant in variants) Multiply(variant, a, b, c, m, n, k, false, 2);
            // The caller's bytes and the helper threads' bytes together.
            Assert.Equal(0, Allocations.SteadyState(() =>
            {
                for (int repeat = 0; repeat < 5; repeat++)
                    foreach (Variant variant in variants)
                    {
                        Multiply(variant, a, b, c, m, n, k, accumulate: false, threads: 2);
                        Multiply(variant, a, b, c, m, n, k, accumulate: true, threads: 2);
                    }
            }, static () => GemmWorkers.HelperAllocatedBytes));
        }
    }

    [Fact]
    public void ConcurrentCallersGetTheSameBitsAsSequentialOnes()
    {
        const int callers = 4, m = 150, n = 70, k = 290;
        var inputs = Enumerable.Range(0, callers)
            .Select(i => (A: RandomValues(m * k, 10 + i), B: RandomValues(n * k, 20 + i))).ToArray();
        float[][] Run(int i)
        {
            var results = new float[3][];
            foreach (Variant variant in Enum.GetValues<Variant>())
            {
                results[(int)variant] = new float[m * n];
                for (int repeat = 0; repeat < 3; repeat++)
                    Multiply(variant, inputs[i].A, inputs[i].B, results[(int)variant], m, n, k, false, 1);
            }
            return results;
        }
        var sequential = Enumerable.Range(0, callers).Select(Run).ToArray();
        var concurrent = new float[callers][][];
        using var start = new Barrier(callers);
        var workers = Enumerable.Range(0, callers).Select(i => new Thread(() =>
        {
            start.SignalAndWait();
            concurrent[i] = Run(i);
        })).ToArray();
        foreach (var worker in workers) worker.Start();
        foreach (var worker in workers) worker.Join();
        for (int i = 0; i < callers; i++)
            for (int v = 0; v < 3; v++) Assert.Equal(Bits(sequential[i][v]), Bits(concurrent[i][v]));
    }

    [Fact]
    public void RejectsBadArgumentsNamingThem()
    {
        float[] x = new float[16];
        Assert.Equal("m", Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.MultiplyAB(x, x, x, -1, 2, 2, false)).ParamName);
        Assert.Equal("k", Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.MultiplyABt(x, x, x, 2, 2, -3, false)).ParamName);
        Assert.Equal("threads", Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.MultiplyAtB(x, x, x, 2, 2, 2, false, 0)).ParamName);
        var tooShort = Assert.Throws<ArgumentException>(() => Gemm.MultiplyAB(new float[5], x, x, 2, 2, 3, false));
        Assert.Equal("a", tooShort.ParamName);
        Assert.Contains("needs m·k = 6", tooShort.Message);
        Assert.Equal("c", Assert.Throws<ArgumentException>(() => Gemm.MultiplyAtB(x, x, new float[3], 2, 2, 2, false)).ParamName);
    }

    [Fact]
    [Trait("Category", "Benchmark")]
    public void Benchmark()
    {
        // Opt-in (DISTTRAIN_BENCH=1): prints GFLOP/s medians; compare with anchors/sgemm_peak.py run back-to-back.
        if (Environment.GetEnvironmentVariable("DISTTRAIN_BENCH") != "1") return;
        foreach (int threads in new[] { 1, 2 })
            foreach (var r in GemmBenchmark.Run(threads, repetitions: 21))
                output.WriteLine($"threads={threads} {r.Name,-22} {r.Variant,-4} {r.M}x{r.N}x{r.K}: {r.GflopsMedian:F1} GFLOP/s");
    }

    /// <summary>Reference in float64 with the classic bound |error| ≤ γ(k+1)·(Σ|a||b| + |c₀|), doubled for slack.</summary>
    private static void CheckAgainstReference(Variant variant, int m, int n, int k, bool accumulate, int seed)
    {
        float[] a = RandomValues(m * k, seed), b = RandomValues(n * k, seed + 7919);
        float[] initial = accumulate ? RandomValues(m * n, seed + 104729) : Enumerable.Repeat(float.NaN, m * n).ToArray();
        float[] c = (float[])initial.Clone();
        Multiply(variant, a, b, c, m, n, k, accumulate, threads: 1);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = accumulate ? initial[i * n + j] : 0, scale = accumulate ? Math.Abs(initial[i * n + j]) : 0;
                for (int p = 0; p < k; p++)
                {
                    double term = (double)ElementA(variant, a, i, p, m, k) * ElementB(variant, b, p, j, n, k);
                    sum += term;
                    scale += Math.Abs(term);
                }
                double tolerance = 2 * (k + 1) * Math.Pow(2, -24) * scale;
                double error = Math.Abs(c[i * n + j] - sum);
                Assert.True(error <= tolerance,
                    $"{variant} m={m} n={n} k={k} accumulate={accumulate}: C[{i},{j}] = {c[i * n + j]}, expected {sum} ± {tolerance}");
            }
    }

    private static float ElementA(Variant v, float[] a, int i, int p, int m, int k) => v == Variant.AtB ? a[p * m + i] : a[i * k + p];

    private static float ElementB(Variant v, float[] b, int p, int j, int n, int k) => v == Variant.ABt ? b[j * k + p] : b[p * n + j];

    private static void Multiply(Variant variant, float[] a, float[] b, float[] c, int m, int n, int k, bool accumulate, int threads)
    {
        switch (variant)
        {
            case Variant.ABt: Gemm.MultiplyABt(a, b, c, m, n, k, accumulate, threads); break;
            case Variant.AtB: Gemm.MultiplyAtB(a, b, c, m, n, k, accumulate, threads); break;
            default: Gemm.MultiplyAB(a, b, c, m, n, k, accumulate, threads); break;
        }
    }

    private static float[] RandomValues(int length, int seed)
    {
        var random = new Random(seed);
        var values = new float[length];
        for (int i = 0; i < length; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
        return values;
    }

    private static int[] Bits(float[] values) => values.Select(BitConverter.SingleToInt32Bits).ToArray();
}
