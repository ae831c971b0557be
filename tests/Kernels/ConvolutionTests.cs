// Convolution against a naive float64 reference written from PyTorch's NCHW definition (layouts converted here), on
// awkward shapes; plus the overwrite, determinism and allocation promises and ConvGeometry's error messages.
using DistTrain.Core;
using DistTrain.Core.Kernels;
using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Kernels;

public class ConvolutionTests
{
    // (cin, h, w, cout, kh, kw, stride, padding, rows): kernels 1/3/5 and non-square, strides 1/2, padding 0/1/2,
    // odd sizes, 1×1 kernels, the CNN's two layers, and one whose samples take two im2col chunks. Cin·KW < 16 takes the
    // narrow im2col, and with a multiple of 16 output channels (on AVX-512) the direct weight gradient too.
    public static TheoryData<int, int, int, int, int, int, int, int, int> Shapes => new()
    {
        { 1, 7, 9, 3, 3, 3, 1, 1, 5 },
        { 3, 9, 7, 7, 5, 5, 2, 2, 1 },
        { 7, 5, 5, 3, 1, 1, 1, 0, 5 },
        { 3, 9, 9, 4, 1, 1, 2, 0, 5 },
        { 5, 4, 3, 3, 1, 1, 1, 1, 1 },
        { 3, 8, 11, 5, 3, 5, 2, 1, 5 },
        { 3, 11, 4, 2, 5, 1, 2, 2, 5 },
        { 7, 6, 6, 17, 3, 3, 1, 0, 1 },
        { 7, 3, 3, 5, 5, 5, 1, 1, 5 },
        { 1, 13, 13, 32, 3, 3, 1, 1, 5 },
        { 7, 7, 7, 1, 3, 3, 2, 0, 5 },
        { 32, 14, 14, 64, 3, 3, 1, 1, 5 },
        { 1, 9, 8, 16, 5, 5, 2, 2, 5 },
        { 3, 10, 7, 32, 3, 3, 2, 1, 5 },
        { 2, 6, 5, 16, 1, 3, 1, 0, 1 },
        { 3, 9, 8, 17, 3, 3, 2, 0, 5 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void MatchesFloat64Reference(int cin, int h, int w, int cout, int kh, int kw, int stride, int padding, int rows)
    {
        var g = new ConvGeometry(cin, h, w, cout, kh, kw, stride, padding);
        g.Validate("test");
        int seed = cin * 1000 + h * 100 + w * 10 + kh;
        float[] x = Random(rows * g.InputLength, seed), weight = Random(g.WeightCount, seed + 1);
        float[] bias = Random(cout, seed + 2), dy = Random(rows * g.OutputLength, seed + 3);
        var reference = new Reference(g, rows, ToNchw(x, rows, h, w, cin), weight, bias,
            ToNchw(dy, rows, g.OutHeight, g.OutWidth, cout));

        var r = Run(g, x, weight, bias, dy, rows, withDx: true);
        AssertClose(reference.Y, reference.YScale, ToNchw(r.Y, rows, g.OutHeight, g.OutWidth, cout), "y");
        AssertClose(reference.WeightGrad, reference.WeightGradScale, r.WeightGrad, "weightGrad");
        AssertClose(reference.BiasGrad, reference.BiasGradScale, r.BiasGrad, "biasGrad");
        AssertClose(reference.Dx, reference.DxScale, ToNchw(r.Dx!, rows, h, w, cin), "dx");

        // Without dx (a first layer) the parameter gradients keep their bits.
        var noDx = Run(g, x, weight, bias, dy, rows, withDx: false);
        Assert.Equal(Bits(r.WeightGrad), Bits(noDx.WeightGrad));
        Assert.Equal(Bits(r.BiasGrad), Bits(noDx.BiasGrad));
    }

    [Fact]
    public void RepeatedCallsGiveTheSameBitsWhateverTheScratchHeld()
    {
        var g = new ConvGeometry(32, 14, 14, 64, 3, 3, 1, 1);
        const int rows = 6;
        float[] x = Random(rows * g.InputLength, 1), weight = Random(g.WeightCount, 2), bias = Random(64, 3);
        float[] dy = Random(rows * g.OutputLength, 4);
        var first = Run(g, x, weight, bias, dy, rows, withDx: true);
        var second = Run(g, x, weight, bias, dy, rows, withDx: true, scratchFill: float.NaN);
        Assert.Equal(Bits(first.Y), Bits(second.Y));
        Assert.Equal(Bits(first.WeightGrad), Bits(second.WeightGrad));
        Assert.Equal(Bits(first.BiasGrad), Bits(second.BiasGrad));
        Assert.Equal(Bits(first.Dx!), Bits(second.Dx!));
    }

    [Fact]
    public void ZeroRowsGiveZeroGradients()
    {
        var g = new ConvGeometry(3, 5, 5, 4, 3, 3, 1, 1);
        float[] weightGrad = Filled(g.WeightCount, float.NaN), biasGrad = Filled(4, float.NaN);
        float[] scratch = new float[Convolution.ScratchFloats(g, 0)];
        Convolution.Forward(g, [], new float[g.WeightCount], new float[4], [], 0, scratch);
        Convolution.Backward(g, [], new float[g.WeightCount], [], weightGrad, biasGrad, [], 0, scratch);
        Assert.All(weightGrad, v => Assert.Equal(0f, v));
        Assert.All(biasGrad, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void ForwardAndBackwardAllocateNothingAfterWarmUp()
    {
        foreach (var g in new[] { new ConvGeometry(1, 28, 28, 32, 3, 3, 1, 1), new ConvGeometry(32, 14, 14, 64, 3, 3, 1, 1) })
        {
            const int rows = 9;
            float[] x = Random(rows * g.InputLength, 1), weight = Random(g.WeightCount, 2), bias = Random(g.OutChannels, 3);
            float[] y = new float[rows * g.OutputLength], dy = Random(y.Length, 4), dx = new float[x.Length];
            float[] weightGrad = new float[g.WeightCount], biasGrad = new float[g.OutChannels];
            float[] scratch = new float[Convolution.ScratchFloats(g, rows)];
            Assert.Equal(0, Allocations.SteadyState(() =>
            {
                Convolution.Forward(g, x, weight, bias, y, rows, scratch);
                Convolution.Backward(g, x, weight, dy, weightGrad, biasGrad, dx, rows, scratch);
                Convolution.Backward(g, x, weight, dy, weightGrad, biasGrad, [], rows, scratch);
            }));
        }
    }

    [Fact]
    public void ScratchSizeFollowsTheChunkRule()
    {
        var small = new ConvGeometry(1, 28, 28, 32, 3, 3, 1, 1); // 7,056 column floats a sample
        int chunk = Convolution.ColumnBudget / (784 * 9);
        Assert.Equal(3 * 32 * 9 + 5 * 784 * 9, Convolution.ScratchFloats(small, 5));
        Assert.Equal(3 * 32 * 9 + chunk * 784 * 9, Convolution.ScratchFloats(small, 128));
        var large = new ConvGeometry(64, 64, 64, 64, 3, 3, 1, 1); // more than the budget for one sample: one a chunk
        Assert.Equal(3 * 64 * 576 + 4096 * 576, Convolution.ScratchFloats(large, 3));
        var error = Assert.Throws<ArgumentException>(() => Convolution.Forward(small, new float[small.InputLength],
            new float[small.WeightCount], new float[32], new float[small.OutputLength], 1, new float[10]));
        Assert.Equal("scratch", error.ParamName);
    }

    [Theory]
    [InlineData(0, 5, 5, 4, 3, 3, 1, 0, "conv1: in_channels must be ≥ 1, found 0")]
    [InlineData(3, 5, 5, -2, 3, 3, 1, 0, "conv1: out_channels must be ≥ 1, found -2")]
    [InlineData(3, 5, 5, 4, 0, 3, 1, 0, "conv1: kernel_size must be ≥ 1, found 0×3")]
    [InlineData(3, 5, 5, 4, 3, 3, 0, 0, "conv1: stride must be ≥ 1, found 0")]
    [InlineData(3, 5, 5, 4, 3, 3, 1, -1, "conv1: padding must be ≥ 0, found -1")]
    [InlineData(3, 0, 5, 4, 3, 3, 1, 0, "conv1: the input must be at least 1×1, found 0×5")]
    [InlineData(3, 5, 4, 4, 3, 7, 2, 1, "conv1: kernel 3×7 is larger than the padded input 7×6 (input 5×4, padding 1)")]
    public void ValidateNamesTheLayerAndTheValueInOneLine(int cin, int h, int w, int cout, int kh, int kw, int stride,
        int padding, string message)
    {
        var g = new ConvGeometry(cin, h, w, cout, kh, kw, stride, padding);
        Assert.False(g.IsValid);
        var error = Assert.Throws<UserInputException>(() => g.Validate("conv1"));
        Assert.Equal(message, error.Message);
        Assert.Throws<ArgumentException>(() => Convolution.ScratchFloats(g, 1));
    }

    [Fact]
    public void GeometryFollowsPyTorchFloorSemantics()
    {
        var g = new ConvGeometry(3, 28, 27, 8, 3, 5, 2, 1);
        Assert.Equal((28 + 2 - 3) / 2 + 1, g.OutHeight);
        Assert.Equal((27 + 2 - 5) / 2 + 1, g.OutWidth);
        Assert.Equal(28 * 27 * 3, g.InputLength);
        Assert.Equal(g.OutHeight * g.OutWidth * 8, g.OutputLength);
        Assert.Equal(8 * 3 * 3 * 5, g.WeightCount);
        // (4 + 0 − 5) / 2 is −0.5: floor gives no output, where C#'s truncation would give one.
        Assert.Equal(0, new ConvGeometry(1, 4, 4, 1, 5, 5, 2, 0).OutHeight);
        var pool = ConvGeometry.ForPooling(6, 7, 7, 3, 2, 2);
        Assert.Equal("pool2: padding must be at most half the kernel (3×3), found padding = 2",
            Assert.Throws<UserInputException>(() => pool.ValidatePooling("pool2")).Message);
        Assert.Contains("pooling keeps the channels", Assert.Throws<UserInputException>(
            () => new ConvGeometry(6, 7, 7, 5, 2, 2, 2, 0).ValidatePooling("pool1")).Message);
    }

    private sealed record Result(float[] Y, float[] WeightGrad, float[] BiasGrad, float[]? Dx);

    private static Result Run(ConvGeometry g, float[] x, float[] weight, float[] bias, float[] dy, int rows, bool withDx,
        float scratchFill = 0)
    {
        // Outputs start as NaN: every element must be overwritten.
        float[] y = Filled(rows * g.OutputLength, float.NaN), weightGrad = Filled(g.WeightCount, float.NaN);
        float[] biasGrad = Filled(g.OutChannels, float.NaN), dx = Filled(withDx ? x.Length : 0, float.NaN);
        float[] scratch = Filled(Convolution.ScratchFloats(g, rows), scratchFill);
        Convolution.Forward(g, x, weight, bias, y, rows, scratch);
        Convolution.Backward(g, x, weight, dy, weightGrad, biasGrad, dx, rows, scratch);
        return new Result(y, weightGrad, biasGrad, withDx ? dx : null);
    }

    /// <summary>PyTorch's conv2d and its gradients, NCHW, float64, with Σ|term| per element for the tolerance.</summary>
    private sealed class Reference
    {
        public readonly double[] Y, YScale, WeightGrad, WeightGradScale, BiasGrad, BiasGradScale, Dx, DxScale;

        public Reference(ConvGeometry g, int rows, float[] x, float[] weight, float[] bias, float[] dy)
        {
            int cin = g.InChannels, cout = g.OutChannels, h = g.InHeight, w = g.InWidth, ho = g.OutHeight, wo = g.OutWidth;
            int kh = g.KernelHeight, kw = g.KernelWidth;
            Y = new double[rows * cout * ho * wo]; YScale = new double[Y.Length];
            WeightGrad = new double[weight.Length]; WeightGradScale = new double[weight.Length];
            BiasGrad = new double[cout]; BiasGradScale = new double[cout];
            Dx = new double[x.Length]; DxScale = new double[x.Length];
            for (int n = 0; n < rows; n++)
                for (int o = 0; o < cout; o++)
                    for (int oh = 0; oh < ho; oh++)
                        for (int ow = 0; ow < wo; ow++)
                        {
                            int yAt = ((n * cout + o) * ho + oh) * wo + ow;
                            double sum = bias[o], scale = Math.Abs(bias[o]), gradient = dy[yAt];
                            BiasGrad[o] += gradient;
                            BiasGradScale[o] += Math.Abs(gradient);
                            for (int c = 0; c < cin; c++)
                                for (int i = 0; i < kh; i++)
                                    for (int j = 0; j < kw; j++)
                                    {
                                        int ih = oh * g.Stride - g.Padding + i, iw = ow * g.Stride - g.Padding + j;
                                        if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
                                        int xAt = ((n * cin + c) * h + ih) * w + iw, wAt = ((o * cin + c) * kh + i) * kw + j;
                                        double term = (double)x[xAt] * weight[wAt];
                                        sum += term;
                                        scale += Math.Abs(term);
                                        WeightGrad[wAt] += gradient * x[xAt];
                                        WeightGradScale[wAt] += Math.Abs(gradient * x[xAt]);
                                        Dx[xAt] += gradient * weight[wAt];
                                        DxScale[xAt] += Math.Abs(gradient * weight[wAt]);
                                    }
                            Y[yAt] = sum;
                            YScale[yAt] = scale;
                        }
        }
    }

    private static void AssertClose(double[] expected, double[] scale, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double tolerance = 1e-4 * scale[i] + 1e-30;
            Assert.True(Math.Abs(actual[i] - expected[i]) <= tolerance, $"{what}[{i}] = {actual[i]}, expected {expected[i]} ± {tolerance}");
        }
    }

    /// <summary>[rows][h][w][c] → [rows][c][h][w].</summary>
    internal static float[] ToNchw(float[] nhwc, int rows, int h, int w, int c)
    {
        var nchw = new float[rows * c * h * w];
        for (int n = 0; n < rows; n++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    for (int k = 0; k < c; k++)
                        nchw[((n * c + k) * h + y) * w + x] = nhwc[((n * h + y) * w + x) * c + k];
        return nchw;
    }

    internal static float[] Random(int length, int seed)
    {
        var random = new Random(seed);
        var values = new float[length];
        for (int i = 0; i < length; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
        return values;
    }

    internal static float[] Filled(int length, float value) => Enumerable.Repeat(value, length).ToArray();

    internal static int[] Bits(float[] values) => values.Select(BitConverter.SingleToInt32Bits).ToArray();
}
