// The first layer's products read straight from an image dataset's bytes (rows picked by the batch, each byte divided
// as it is packed) give the bits of the ordinary products on a gathered float copy, for awkward shapes around the
// block sizes, repeated and unordered rows, accumulation and any thread count; row numbers outside the matrix are
// refused. CI runs the kernel tests again at every SIMD width.
using DistTrain.Core.Kernels;

namespace DistTrain.Tests.Kernels;

public class GemmGatheredTests
{
    // Around MR (8), NR (16, 32), MC (128), KC (256) and the packed-B group; a shard-like shape of the lecture model.
    private static readonly (int M, int N, int K)[] Shapes =
    [
        (1, 1, 1), (7, 9, 13), (8, 32, 16), (9, 33, 17), (127, 31, 255), (129, 65, 257), (61, 130, 513), (300, 128, 784),
        (40, 1025, 9),
    ];

    private static (byte[] Bytes, int[] Rows, float[] Gathered) Batch(int rows, int width, int datasetRows, ByteDivisor divisor, int seed)
    {
        var random = new Random(seed);
        var bytes = new byte[datasetRows * width];
        random.NextBytes(bytes);
        // Unordered, with repeats: a batch is any selection of the dataset's rows.
        int[] picked = [.. Enumerable.Range(0, rows).Select(_ => random.Next(datasetRows))];
        var gathered = new float[rows * width];
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < width; j++) gathered[r * width + j] = bytes[picked[r] * width + j] / divisor.Value;
        return (bytes, picked, gathered);
    }

    private static float[] RandomValues(int length, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, length).Select(_ => (float)(random.NextDouble() * 2 - 1))];
    }

    private static int[] Bits(float[] values) => [.. values.Select(BitConverter.SingleToInt32Bits)];

    [Theory]
    [InlineData(255f)]
    [InlineData(1f)]
    [InlineData(7.3f)]
    public void ForwardOnGatheredBytesHasTheBitsOfTheGatheredCopy(float value)
    {
        var divisor = new ByteDivisor(value);
        foreach (var (m, n, k) in Shapes)
        {
            var (bytes, rows, gathered) = Batch(m, k, m + 5, divisor, m + n + k);
            float[] weights = RandomValues(n * k, 2), initial = RandomValues(m * n, 3);
            foreach (bool accumulate in new[] { false, true })
                foreach (int threads in new[] { 1, 2 })
                {
                    float[] expected = (float[])initial.Clone(), actual = (float[])initial.Clone();
                    Gemm.MultiplyABt(gathered, weights, expected, m, n, k, accumulate, threads);
                    Gemm.MultiplyGatheredABt(bytes, rows, divisor, weights, actual, m, n, k, accumulate, threads);
                    Assert.True(Bits(expected).SequenceEqual(Bits(actual)), $"X·Wᵀ {m}×{n}×{k}, accumulate {accumulate}, {threads} thread(s)");
                }
        }
    }

    [Theory]
    [InlineData(255f)]
    [InlineData(7.3f)]
    public void WeightGradientOnGatheredBytesHasTheBitsOfTheGatheredCopy(float value)
    {
        var divisor = new ByteDivisor(value);
        foreach (var (m, n, k) in Shapes)
        {
            // dW[m×n] = dYᵀ·X: dY is k rows (the batch) × m, X is k gathered rows × n.
            var (bytes, rows, gathered) = Batch(k, n, k + 3, divisor, m * 7 + n + k);
            float[] dy = RandomValues(k * m, 4), initial = RandomValues(m * n, 5);
            foreach (bool accumulate in new[] { false, true })
                foreach (int threads in new[] { 1, 2 })
                {
                    float[] expected = (float[])initial.Clone(), actual = (float[])initial.Clone();
                    Gemm.MultiplyAtB(dy, gathered, expected, m, n, k, accumulate, threads);
                    Gemm.MultiplyAtGatheredB(dy, bytes, rows, divisor, actual, m, n, k, accumulate, threads);
                    Assert.True(Bits(expected).SequenceEqual(Bits(actual)), $"dYᵀ·X {m}×{n}×{k}, accumulate {accumulate}, {threads} thread(s)");
                }
        }
    }

    [Fact]
    public void RowNumbersOutsideTheMatrixAreRefused()
    {
        var bytes = new byte[4 * 3]; // 4 rows of 3
        float[] w = new float[2 * 3], c = new float[2 * 2];
        Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.MultiplyGatheredABt(bytes, [0, 4], ByteDivisor.One, w, c, 2, 2, 3, false));
        Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.MultiplyGatheredABt(bytes, [-1, 0], ByteDivisor.One, w, c, 2, 2, 3, false));
        Assert.Throws<ArgumentException>(() => Gemm.MultiplyGatheredABt(bytes, [0], ByteDivisor.One, w, c, 2, 2, 3, false));
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            Gemm.MultiplyAtGatheredB(new float[2 * 2], bytes, [3, 9], ByteDivisor.One, new float[2 * 3], 2, 3, 2, false));
    }
}
