// Throughput of Convolution and Pooling on the MNIST CNN's shapes (conv 3×3 pad 1 1→32 on 28×28, max-pool 2,
// conv 3×3 pad 1 32→64 on 14×14, max-pool 2), for `disttrain bench`. The kernels are single-threaded by design.
using System.Diagnostics;

namespace DistTrain.Core.Kernels;

/// <summary>One pass's median time; GFLOP/s counts 2·rows·Ho·Wo·Cout·(KH·KW·Cin) per convolution pass, null for pooling.</summary>
public sealed record ConvBenchmarkResult(string Layer, string Pass, int Rows, double MillisecondsMedian, double? GflopsMedian);

public static class ConvBenchmark
{
    private static readonly (string Name, ConvGeometry Geometry)[] Convolutions =
    [
        ("conv 1→32 28×28", new ConvGeometry(1, 28, 28, 32, 3, 3, 1, 1)),
        ("conv 32→64 14×14", new ConvGeometry(32, 14, 14, 64, 3, 3, 1, 1)),
    ];

    private static readonly (string Name, ConvGeometry Geometry)[] Pools =
    [
        ("maxpool 2 32×28×28", ConvGeometry.ForPooling(32, 28, 28, 2, 2, 0)),
        ("maxpool 2 64×14×14", ConvGeometry.ForPooling(64, 14, 14, 2, 2, 0)),
    ];

    /// <summary>
    /// Times each pass <paramref name="repetitions"/> times after two warm-up calls, for each batch size. "weight
    /// gradient" is Backward without dx (weight and bias gradients); "input gradient" is Backward with dx minus that.
    /// </summary>
    public static IReadOnlyList<ConvBenchmarkResult> Run(IReadOnlyList<int> batchSizes, int repetitions)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(repetitions, 1);
        var results = new List<ConvBenchmarkResult>();
        foreach (int rows in batchSizes)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
            foreach (var (name, g) in Convolutions)
            {
                // Allocated and touched before timing: first touch of a fresh page costs ~12 µs on these VMs.
                float[] x = Random(rows * g.InputLength, 1), weight = Random(g.WeightCount, 2), bias = Random(g.OutChannels, 3);
                float[] y = new float[rows * g.OutputLength], dy = Random(y.Length, 4), dx = new float[x.Length];
                float[] weightGrad = new float[g.WeightCount], biasGrad = new float[g.OutChannels];
                float[] scratch = new float[Convolution.ScratchFloats(g, rows)];
                double flops = 2.0 * rows * g.OutHeight * g.OutWidth * g.OutChannels * g.PatchLength;
                double forward = Median(repetitions, () => Convolution.Forward(g, x, weight, bias, y, rows, scratch));
                double weightOnly = Median(repetitions,
                    () => Convolution.Backward(g, x, weight, dy, weightGrad, biasGrad, [], rows, scratch));
                double both = Median(repetitions,
                    () => Convolution.Backward(g, x, weight, dy, weightGrad, biasGrad, dx, rows, scratch));
                results.Add(new(name, "forward", rows, forward * 1e3, flops / forward / 1e9));
                results.Add(new(name, "weight gradient", rows, weightOnly * 1e3, flops / weightOnly / 1e9));
                results.Add(new(name, "input gradient", rows, (both - weightOnly) * 1e3, flops / (both - weightOnly) / 1e9));
            }
            foreach (var (name, g) in Pools)
            {
                float[] x = Random(rows * g.InputLength, 5), y = new float[rows * g.OutputLength], dx = new float[x.Length];
                int[] argmax = new int[y.Length];
                double forward = Median(repetitions, () => Pooling.MaxForward(g, x, y, argmax, rows));
                double backward = Median(repetitions, () => Pooling.MaxBackward(g, y, argmax, dx, rows));
                results.Add(new(name, "forward", rows, forward * 1e3, null));
                results.Add(new(name, "backward", rows, backward * 1e3, null));
            }
        }
        return results;
    }

    private static double Median(int repetitions, Action pass)
    {
        pass();
        pass();
        var seconds = new double[repetitions];
        for (int r = 0; r < repetitions; r++)
        {
            long start = Stopwatch.GetTimestamp();
            pass();
            seconds[r] = Stopwatch.GetElapsedTime(start).TotalSeconds;
        }
        Array.Sort(seconds);
        return repetitions % 2 == 1 ? seconds[repetitions / 2] : 0.5 * (seconds[repetitions / 2 - 1] + seconds[repetitions / 2]);
    }

    private static float[] Random(int length, int seed)
    {
        var random = new Random(seed);
        var values = new float[length];
        for (int i = 0; i < length; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
        return values;
    }
}
