// Pooling against naive references written from PyTorch's NCHW definitions (max_pool2d with −inf padding and its
// NaN rule, avg_pool2d with count_include_pad, adaptive average to 1×1), over channel counts that take every path:
// scalar (< 8), Vector256 (8..15) and Vector512 with an overlapping last vector (16, 19, 35).
using DistTrain.Core.Kernels;
using DistTrain.Tests.Infrastructure;
using static DistTrain.Tests.Kernels.ConvolutionTests;

namespace DistTrain.Tests.Kernels;

public class PoolingTests
{
    // (channels, h, w, kernel, stride, padding, rows)
    public static TheoryData<int, int, int, int, int, int, int> Shapes => new()
    {
        { 1, 7, 9, 2, 2, 0, 5 },
        { 3, 9, 7, 3, 2, 1, 1 },
        { 7, 5, 5, 3, 1, 1, 5 },
        { 8, 6, 6, 2, 2, 1, 5 },
        { 11, 7, 5, 5, 2, 2, 1 },
        { 16, 8, 8, 2, 2, 0, 5 },
        { 19, 9, 9, 3, 3, 1, 5 },
        { 35, 5, 7, 1, 2, 0, 1 },
        { 32, 28, 28, 2, 2, 0, 5 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void MaxPoolingMatchesReference(int channels, int h, int w, int kernel, int stride, int padding, int rows)
    {
        var g = ConvGeometry.ForPooling(channels, h, w, kernel, stride, padding);
        g.ValidatePooling("test");
        float[] x = Random(rows * g.InputLength, channels * 31 + h), dy = Random(rows * g.OutputLength, 7);
        // Repeats make ties common: the first maximum must win.
        for (int i = 0; i < x.Length; i++) x[i] = MathF.Round(x[i] * 3);
        float[] y = Filled(dy.Length, float.NaN), dx = Filled(x.Length, float.NaN);
        int[] argmax = new int[dy.Length];
        Pooling.MaxForward(g, x, y, argmax, rows);
        Pooling.MaxBackward(g, dy, argmax, dx, rows);

        var (expected, expectedAt) = ReferenceMax(g, ToNchw(x, rows, h, w, channels), rows);
        float[] yNchw = ToNchw(y, rows, g.OutHeight, g.OutWidth, channels);
        int[] atNchw = ArgmaxToNchw(g, argmax, rows);
        Assert.Equal(Bits(expected), Bits(yNchw));
        Assert.Equal(expectedAt, atNchw);

        float[] dyNchw = ToNchw(dy, rows, g.OutHeight, g.OutWidth, channels);
        double[] expectedDx = new double[x.Length], scale = new double[x.Length];
        for (int j = 0; j < dyNchw.Length; j++)
        {
            expectedDx[expectedAt[j]] += dyNchw[j];
            scale[expectedAt[j]] += Math.Abs(dyNchw[j]);
        }
        AssertClose(expectedDx, scale, ToNchw(dx, rows, h, w, channels), "dx");
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void AveragePoolingMatchesReference(int channels, int h, int w, int kernel, int stride, int padding, int rows)
    {
        var g = ConvGeometry.ForPooling(channels, h, w, kernel, stride, padding);
        float[] x = Random(rows * g.InputLength, channels + h), dy = Random(rows * g.OutputLength, 9);
        float[] y = Filled(dy.Length, float.NaN), dx = Filled(x.Length, float.NaN);
        Pooling.AvgForward(g, x, y, rows);
        Pooling.AvgBackward(g, dy, dx, rows);

        float[] xNchw = ToNchw(x, rows, h, w, channels), dyNchw = ToNchw(dy, rows, g.OutHeight, g.OutWidth, channels);
        int ho = g.OutHeight, wo = g.OutWidth;
        double divisor = kernel * kernel;
        double[] expectedY = new double[y.Length], yScale = new double[y.Length];
        double[] expectedDx = new double[x.Length], dxScale = new double[x.Length];
        for (int n = 0; n < rows; n++)
            for (int c = 0; c < channels; c++)
                for (int oh = 0; oh < ho; oh++)
                    for (int ow = 0; ow < wo; ow++)
                    {
                        int yAt = ((n * channels + c) * ho + oh) * wo + ow;
                        foreach (int xAt in WindowOffsets(g, n, c, oh, ow))
                        {
                            expectedY[yAt] += xNchw[xAt] / divisor;
                            yScale[yAt] += Math.Abs(xNchw[xAt]) / divisor;
                            expectedDx[xAt] += dyNchw[yAt] / divisor;
                            dxScale[xAt] += Math.Abs(dyNchw[yAt]) / divisor;
                        }
                    }
        AssertClose(expectedY, yScale, ToNchw(y, rows, ho, wo, channels), "y");
        AssertClose(expectedDx, dxScale, ToNchw(dx, rows, h, w, channels), "dx");
    }

    [Theory]
    [InlineData(1, 1, 1, 1)]
    [InlineData(3, 7, 5, 3)]
    [InlineData(5, 4, 4, 16)]
    [InlineData(2, 3, 3, 21)]
    [InlineData(2, 7, 7, 64)]
    public void GlobalAveragePoolingMatchesReference(int rows, int h, int w, int channels)
    {
        float[] x = Random(rows * h * w * channels, h * w + channels), dy = Random(rows * channels, 5);
        float[] y = Filled(dy.Length, float.NaN), dx = Filled(x.Length, float.NaN);
        Pooling.GlobalAvgForward(x, y, rows, h, w, channels);
        Pooling.GlobalAvgBackward(dy, dx, rows, h, w, channels);
        for (int n = 0; n < rows; n++)
            for (int c = 0; c < channels; c++)
            {
                double sum = 0, scale = 0;
                for (int p = 0; p < h * w; p++)
                {
                    float v = x[(n * h * w + p) * channels + c];
                    sum += v;
                    scale += Math.Abs(v);
                    Assert.Equal(dy[n * channels + c] / (float)(h * w), dx[(n * h * w + p) * channels + c]);
                }
                Assert.True(Math.Abs(y[n * channels + c] - sum / (h * w)) <= 1e-4 * scale / (h * w) + 1e-30,
                    $"y[{n},{c}] = {y[n * channels + c]}, expected {sum / (h * w)}");
            }
    }

    public static TheoryData<int> ChannelCounts => new() { 1, 3, 8, 11, 16, 19, 35 };

    [Theory]
    [MemberData(nameof(ChannelCounts))]
    public void MaxPoolingTiesNaNAndInfinityFollowPyTorch(int channels)
    {
        // One 4×4 image, 2×2 windows, stride 2, padding 1: a 3×3 output whose windows cover rows (and columns) {0},
        // {1, 2} and {3}; the corner windows hold one real pixel and three padding cells.
        var g = ConvGeometry.ForPooling(channels, 4, 4, 2, 2, 1);
        int At(int h, int w, int c) => (h * 4 + w) * channels + c;
        foreach (int c in new[] { 0, channels / 2, channels - 1 })
        {
            float[] x = Filled(g.InputLength, -5f);
            x[At(0, 0, c)] = -7f;                                        // window (0,0): padding never beats a real −7
            x[At(0, 1, c)] = 2f; x[At(0, 2, c)] = 2f;                    // window (0,1): a tie, the first cell wins
            x[At(1, 1, c)] = float.NaN; x[At(1, 2, c)] = 9f;             // window (1,1): NaN beats a larger value,
            x[At(2, 1, c)] = float.NaN; x[At(2, 2, c)] = 9f;             //   and the last NaN is the one taken
            x[At(1, 0, c)] = float.NegativeInfinity; x[At(2, 0, c)] = float.NegativeInfinity; // window (1,0): the first −inf
            float[] y = new float[g.OutputLength];
            int[] argmax = new int[g.OutputLength];
            Pooling.MaxForward(g, x, y, argmax, 1);
            int Out(int oh, int ow, int channel) => (oh * g.OutWidth + ow) * channels + channel;
            Assert.Equal((-7f, At(0, 0, c)), (y[Out(0, 0, c)], argmax[Out(0, 0, c)]));
            Assert.Equal((2f, At(0, 1, c)), (y[Out(0, 1, c)], argmax[Out(0, 1, c)]));
            Assert.True(float.IsNaN(y[Out(1, 1, c)]));
            Assert.Equal(At(2, 1, c), argmax[Out(1, 1, c)]);
            Assert.Equal((float.NegativeInfinity, At(1, 0, c)), (y[Out(1, 0, c)], argmax[Out(1, 0, c)]));
            // Another channel sees only −5s: each window gives −5 from its first real pixel.
            int other = (c + 1) % channels;
            if (other != c) Assert.Equal((-5f, At(1, 1, other)), (y[Out(1, 1, other)], argmax[Out(1, 1, other)]));
        }
    }

    [Fact]
    public void PoolingAllocatesNothingAfterWarmUp()
    {
        var g = ConvGeometry.ForPooling(32, 28, 28, 2, 2, 0);
        const int rows = 3;
        float[] x = Random(rows * g.InputLength, 1), y = new float[rows * g.OutputLength], dx = new float[x.Length];
        int[] argmax = new int[y.Length];
        Assert.Equal(0, Allocations.SteadyState(() =>
        {
            Pooling.MaxForward(g, x, y, argmax, rows);
            Pooling.MaxBackward(g, y, argmax, dx, rows);
            Pooling.AvgForward(g, x, y, rows);
            Pooling.AvgBackward(g, y, dx, rows);
            Pooling.GlobalAvgForward(x, y, rows, 28, 28, 32);
            Pooling.GlobalAvgBackward(y, dx, rows, 28, 28, 32);
        }));
    }

    [Fact]
    public void BadShapesAreRefusedAtTheBoundary()
    {
        var g = ConvGeometry.ForPooling(4, 6, 6, 2, 2, 0);
        float[] x = new float[g.InputLength], y = new float[g.OutputLength];
        Assert.Equal("y", Assert.Throws<ArgumentException>(() => Pooling.AvgForward(g, new float[2 * g.InputLength], y, 2)).ParamName);
        Assert.Equal("argmax", Assert.Throws<ArgumentException>(() => Pooling.MaxForward(g, x, y, new int[3], 1)).ParamName);
        var padded = ConvGeometry.ForPooling(4, 6, 6, 2, 2, 2);
        Assert.Equal("g", Assert.Throws<ArgumentException>(() => Pooling.AvgForward(padded, x, y, 1)).ParamName);
        Assert.Equal("dx", Assert.Throws<ArgumentException>(() => Pooling.GlobalAvgBackward(y, y, 1, 6, 6, 4)).ParamName);
    }

    /// <summary>max_pool2d as PyTorch defines it (NCHW): padding is −inf, take v when v &gt; best or v is NaN.</summary>
    private static (float[] Y, int[] At) ReferenceMax(ConvGeometry g, float[] x, int rows)
    {
        int channels = g.InChannels, ho = g.OutHeight, wo = g.OutWidth;
        float[] y = new float[rows * channels * ho * wo];
        int[] at = new int[y.Length];
        for (int n = 0; n < rows; n++)
            for (int c = 0; c < channels; c++)
                for (int oh = 0; oh < ho; oh++)
                    for (int ow = 0; ow < wo; ow++)
                    {
                        int yAt = ((n * channels + c) * ho + oh) * wo + ow, bestAt = -1;
                        float best = float.NegativeInfinity;
                        foreach (int xAt in WindowOffsets(g, n, c, oh, ow))
                        {
                            if (bestAt < 0) bestAt = xAt;
                            if (x[xAt] > best || float.IsNaN(x[xAt])) (best, bestAt) = (x[xAt], xAt);
                        }
                        (y[yAt], at[yAt]) = (best, bestAt);
                    }
        return (y, at);
    }

    /// <summary>NCHW offsets of the in-bounds cells of a window, in (kh, kw) order.</summary>
    private static IEnumerable<int> WindowOffsets(ConvGeometry g, int n, int c, int oh, int ow)
    {
        for (int i = 0; i < g.KernelHeight; i++)
            for (int j = 0; j < g.KernelWidth; j++)
            {
                int h = oh * g.Stride - g.Padding + i, w = ow * g.Stride - g.Padding + j;
                if (h >= 0 && h < g.InHeight && w >= 0 && w < g.InWidth)
                    yield return ((n * g.InChannels + c) * g.InHeight + h) * g.InWidth + w;
            }
    }

    /// <summary>The kernel's per-sample NHWC offsets, as NCHW offsets in the batch, laid out NCHW.</summary>
    private static int[] ArgmaxToNchw(ConvGeometry g, int[] argmax, int rows)
    {
        int channels = g.InChannels, ho = g.OutHeight, wo = g.OutWidth, hw = g.InHeight * g.InWidth;
        int[] result = new int[argmax.Length];
        for (int n = 0; n < rows; n++)
            for (int oh = 0; oh < ho; oh++)
                for (int ow = 0; ow < wo; ow++)
                    for (int c = 0; c < channels; c++)
                    {
                        int offset = argmax[n * g.OutputLength + (oh * wo + ow) * channels + c];
                        Assert.Equal(c, offset % channels);
                        result[((n * channels + c) * ho + oh) * wo + ow] = (n * channels + c) * hw + offset / channels;
                    }
        return result;
    }

    private static void AssertClose(double[] expected, double[] scale, float[] actual, string what)
    {
        for (int i = 0; i < expected.Length; i++)
        {
            double tolerance = 1e-4 * scale[i] + 1e-30;
            Assert.True(Math.Abs(actual[i] - expected[i]) <= tolerance, $"{what}[{i}] = {actual[i]}, expected {expected[i]} ± {tolerance}");
        }
    }
}
