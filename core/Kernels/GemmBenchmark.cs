// Throughput of Gemm on the lecture model's training shapes (784-128-10, batch 10,000), for `disttrain bench`.
// Compare against OpenBLAS run back-to-back on the same machine: these VMs drift by ±20% between runs.
using System.Diagnostics;

namespace DistTrain.Core.Kernels;

/// <summary>One shape's median throughput; FLOPs counted as 2·m·n·k.</summary>
public sealed record GemmBenchmarkResult(string Name, int M, int N, int K, string Variant, double GflopsMedian);

public static class GemmBenchmark
{
    private enum Variant { ABt, AtB, AB }

    private static readonly (string Name, Variant Variant, int M, int N, int K)[] Shapes =
    [
        ("forward hidden  X·Wᵀ", Variant.ABt, 10000, 128, 784),
        ("wgrad hidden    dYᵀ·X", Variant.AtB, 128, 784, 10000),
        ("dgrad hidden    dY·W", Variant.AB, 10000, 784, 128),
        ("forward output  H·Wᵀ", Variant.ABt, 10000, 10, 128),
        ("wgrad output    dYᵀ·H", Variant.AtB, 10, 128, 10000),
        ("dgrad output    dY·W", Variant.AB, 10000, 128, 10),
    ];

    /// <summary>Times each shape <paramref name="repetitions"/> times after two warm-up calls; returns medians.</summary>
    public static IReadOnlyList<GemmBenchmarkResult> Run(int threads, int repetitions)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(repetitions, 1);
        var results = new List<GemmBenchmarkResult>(Shapes.Length);
        var seconds = new double[repetitions];
        foreach (var (name, variant, m, n, k) in Shapes)
        {
            // Allocated and touched before timing: first touch of a fresh page costs ~12 µs on these VMs.
            float[] a = Random(m * k, 1), b = Random(n * k, 2), c = new float[m * n];
            Multiply(variant, a, b, c, m, n, k, threads);
            Multiply(variant, a, b, c, m, n, k, threads);
            for (int r = 0; r < repetitions; r++)
            {
                long start = Stopwatch.GetTimestamp();
                Multiply(variant, a, b, c, m, n, k, threads);
                seconds[r] = Stopwatch.GetElapsedTime(start).TotalSeconds;
            }
            Array.Sort(seconds);
            double median = repetitions % 2 == 1 ? seconds[repetitions / 2]
                : 0.5 * (seconds[repetitions / 2 - 1] + seconds[repetitions / 2]);
            results.Add(new GemmBenchmarkResult(name, m, n, k, variant.ToString(), 2.0 * m * n * k / median / 1e9));
        }
        return results;
    }

    private static void Multiply(Variant variant, float[] a, float[] b, float[] c, int m, int n, int k, int threads)
    {
        switch (variant)
        {
            case Variant.ABt: Gemm.MultiplyABt(a, b, c, m, n, k, accumulate: false, threads); break;
            case Variant.AtB: Gemm.MultiplyAtB(a, b, c, m, n, k, accumulate: false, threads); break;
            default: Gemm.MultiplyAB(a, b, c, m, n, k, accumulate: false, threads); break;
        }
    }

    private static float[] Random(int length, int seed)
    {
        var random = new Random(seed);
        var values = new float[length];
        for (int i = 0; i < length; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
        return values;
    }
}
