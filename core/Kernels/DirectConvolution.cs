// The weight gradient straight from the input, without im2col, for layers whose input rows are narrower than a
// vector (Cin·KW < 16, e.g. a 3×3 kernel on a 1- or 3-channel image): there the GEMM dYᵀ·columns has a reduction
// thousands long but only 9 to 27 columns, and measured no faster than this loop even before counting im2col.
// Vectorised over output channels, 16 at a time; AVX-512 only, and only for a multiple of 16 output channels.
using System.Diagnostics;
using System.Runtime.Intrinsics;

namespace DistTrain.Core.Kernels;

internal static unsafe class DirectConvolution
{
    private const int W = 16;

    /// <summary>Whether this path serves the geometry: short input runs, and output channels in whole vectors (the
    /// sums accumulate in memory, so a block may not overlap another).</summary>
    public static bool Applies(in ConvGeometry g) =>
        Vector512.IsHardwareAccelerated && g.InChannels * g.KernelWidth < W && g.OutChannels % W == 0;

    /// <summary>[kh][kw][cin][cout] → [cout][cin][kh][kw], PyTorch's layout.</summary>
    public static void UnpackGradient(in ConvGeometry g, ReadOnlySpan<float> packed, Span<float> weightGrad)
    {
        int cin = g.InChannels, cout = g.OutChannels, taps = g.KernelHeight * g.KernelWidth;
        for (int o = 0; o < cout; o++)
            for (int c = 0; c < cin; c++)
                for (int t = 0; t < taps; t++)
                    weightGrad[(o * cin + c) * taps + t] = packed[(t * cin + c) * cout + o];
    }

    /// <summary>
    /// packedGrad[kh][kw][cin][cout] = Σ of dy·x over all pixels (overwritten): per output row, each tap's products
    /// summed over the row's pixels in order and added to the sample's sum (in <paramref name="sample"/>, rows in
    /// order), and each sample's sum added to the total, samples in order — three levels, so a shard of thousands of
    /// images does not sum in one long chain.
    /// </summary>
    public static void WeightGradient(in ConvGeometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> packedGrad,
        Span<float> sample, int rows)
    {
        Debug.Assert(Applies(g));
        var walk = new Walk(g);
        int cout = g.OutChannels, cin = g.InChannels, step = g.Stride * cin, length = g.PatchLength * cout;
        packedGrad[..length].Clear();
        fixed (float* px = x, pdy = dy, pg = sample)
            for (int n = 0; n < rows; n++)
            {
                sample[..length].Clear();
                for (int oh = 0; oh < walk.OutHeight; oh++)
                {
                    float* gradient = pdy + ((nint)n * walk.OutHeight + oh) * walk.OutWidth * cout;
                    var (i0, i1) = walk.KernelRows(oh);
                    for (int i = i0; i < i1; i++)
                        for (int j = 0; j < walk.KernelWidth; j++)
                        {
                            var (first, last) = walk.OutputColumns(j);
                            float* inputRow = px + (nint)n * walk.InputLength + walk.InputOffset(oh, i, first, j);
                            for (int c = 0; c < cin; c++)
                            {
                                float* sums = pg + (nint)((i * walk.KernelWidth + j) * cin + c) * cout;
                                for (int at = 0; at < cout; at += W)
                                {
                                    Vector512<float> sum = default;
                                    float* input = inputRow + c, d = gradient + (nint)first * cout + at;
                                    for (int ow = first; ow < last; ow++, input += step, d += cout)
                                        sum = Vector512.FusedMultiplyAdd(Vector512.Create(*input), Vector512.Load(d), sum);
                                    (Vector512.Load(sums + at) + sum).Store(sums + at);
                                }
                            }
                        }
                }
                System.Numerics.Tensors.TensorPrimitives.Add(packedGrad[..length], sample[..length], packedGrad[..length]);
            }
    }

    /// <summary>The geometry as locals (OutHeight and OutWidth each cost a division), and which taps are in bounds.</summary>
    private readonly struct Walk(in ConvGeometry g)
    {
        public readonly int OutHeight = g.OutHeight, OutWidth = g.OutWidth, InputLength = g.InputLength, KernelWidth = g.KernelWidth;
        private readonly int _cin = g.InChannels, _kh = g.KernelHeight, _height = g.InHeight, _width = g.InWidth,
            _stride = g.Stride, _padding = g.Padding;

        /// <summary>Kernel rows [i0, i1) that land inside the input for output row oh.</summary>
        public (int, int) KernelRows(int oh)
        {
            int top = oh * _stride - _padding;
            return (Math.Max(0, -top), Math.Min(_kh, _height - top));
        }

        public (int, int) OutputColumns(int j) => Im2Col.OutputColumns(j, _padding, _stride, _width, OutWidth);

        /// <summary>Offset within a sample of input (oh·S − P + i, first·S − P + j), channel 0.</summary>
        public int InputOffset(int oh, int i, int first, int j) =>
            ((oh * _stride - _padding + i) * _width + first * _stride - _padding + j) * _cin;
    }
}
