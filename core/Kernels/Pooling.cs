// Max, average and global-average pooling on channels-last (NHWC) batches, with PyTorch's semantics: max pooling
// pads with −inf, takes the first maximum in (kh, kw) order and lets NaN win; average pooling counts the padding
// (count_include_pad = true). Each window position is a contiguous run of channels, so the loops vectorise over C.
using System.Diagnostics;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace DistTrain.Core.Kernels;

public static class Pooling
{
    /// <summary>
    /// y = the window maximum per channel; argmax[j] = the offset within its sample, (h·W + w)·C + c, of the input
    /// element y[j] came from (the gradient's route in <see cref="MaxBackward"/>).
    /// </summary>
    public static void MaxForward(in ConvGeometry g, ReadOnlySpan<float> x, Span<float> y, Span<int> argmax, int rows)
    {
        Check(g, rows, x.Length, "x", y.Length, "y");
        Need(argmax.Length, (long)rows * g.OutputLength, "argmax", "rows·OutputLength");
        var visitor = new MaxVisitor(x, y, argmax, g.InputLength, g.InWidth, g.InChannels);
        ForEachWindow(g, rows, ref visitor);
    }

    /// <summary>dx = 0, then dx[argmax[j]] += dy[j] for every output j in order (overlapping windows may share a winner).</summary>
    public static void MaxBackward(in ConvGeometry g, ReadOnlySpan<float> dy, ReadOnlySpan<int> argmax, Span<float> dx, int rows)
    {
        Check(g, rows, dx.Length, "dx", dy.Length, "dy");
        Need(argmax.Length, (long)rows * g.OutputLength, "argmax", "rows·OutputLength");
        int inputLength = g.InputLength, outputLength = g.OutputLength;
        dx[..(rows * inputLength)].Clear();
        for (int n = 0; n < rows; n++)
        {
            Span<float> sample = dx.Slice(n * inputLength, inputLength);
            // A scatter: one scalar add per output, indices bounds-checked by the span.
            for (int j = n * outputLength, end = j + outputLength; j < end; j++) sample[argmax[j]] += dy[j];
        }
    }

    /// <summary>y = (Σ over the window, padding counted as zeros) / (KH·KW), summed in (kh, kw) order.</summary>
    public static void AvgForward(in ConvGeometry g, ReadOnlySpan<float> x, Span<float> y, int rows)
    {
        Check(g, rows, x.Length, "x", y.Length, "y");
        var visitor = new AverageVisitor(x, y, g.InputLength, g.InWidth, g.InChannels, g.KernelHeight * g.KernelWidth);
        ForEachWindow(g, rows, ref visitor);
    }

    /// <summary>dx = 0, then every output's dy / (KH·KW) added to each input position of its window, outputs in order.</summary>
    public static void AvgBackward(in ConvGeometry g, ReadOnlySpan<float> dy, Span<float> dx, int rows)
    {
        Check(g, rows, dx.Length, "dx", dy.Length, "dy");
        dx[..(rows * g.InputLength)].Clear();
        var visitor = new AverageGradientVisitor(dy, dx, g.InputLength, g.InWidth, g.InChannels, g.KernelHeight * g.KernelWidth);
        ForEachWindow(g, rows, ref visitor);
    }

    /// <summary>y[rows][c] = the mean of x[rows][h][w][c] over the height·width pixels (summed in pixel order).</summary>
    public static void GlobalAvgForward(ReadOnlySpan<float> x, Span<float> y, int rows, int height, int width, int channels)
    {
        int pixels = CheckGlobal(x.Length, y.Length, rows, height, width, channels, "x", "y");
        for (int n = 0; n < rows; n++)
        {
            Span<float> output = y.Slice(n * channels, channels);
            ColumnSums.Compute(x.Slice(n * pixels * channels, pixels * channels), channels, output);
            TensorPrimitives.Divide(output, pixels, output);
        }
    }

    /// <summary>dx[rows][h][w][c] = dy[rows][c] / (height·width) (overwrites dx).</summary>
    public static void GlobalAvgBackward(ReadOnlySpan<float> dy, Span<float> dx, int rows, int height, int width, int channels)
    {
        int pixels = CheckGlobal(dx.Length, dy.Length, rows, height, width, channels, "dx", "dy");
        for (int n = 0; n < rows; n++)
        {
            Span<float> sample = dx.Slice(n * pixels * channels, pixels * channels), first = sample[..channels];
            TensorPrimitives.Divide(dy.Slice(n * channels, channels), pixels, first);
            for (int p = 1; p < pixels; p++) first.CopyTo(sample.Slice(p * channels, channels));
        }
    }

    /// <summary>What happens at one output pixel: sample n, output offset `at` (in the batch), window rows [h0, h1)
    /// and columns [w0, w1) once the padding is cut away.</summary>
    private interface IWindowVisitor
    {
        void Visit(int n, int at, int h0, int h1, int w0, int w1);
    }

    /// <summary>Output pixels in order: sample, then row, then column.</summary>
    private static void ForEachWindow<TVisitor>(in ConvGeometry g, int rows, ref TVisitor visitor)
        where TVisitor : IWindowVisitor, allows ref struct
    {
        // Locals, not properties, in the loops: OutHeight and OutWidth each cost a 64-bit division.
        int outHeight = g.OutHeight, outWidth = g.OutWidth, channels = g.InChannels, stride = g.Stride, padding = g.Padding;
        int kh = g.KernelHeight, kw = g.KernelWidth, height = g.InHeight, width = g.InWidth;
        for (int n = 0, at = 0; n < rows; n++)
            for (int oh = 0; oh < outHeight; oh++)
            {
                int top = oh * stride - padding, h0 = Math.Max(top, 0), h1 = Math.Min(top + kh, height);
                for (int ow = 0; ow < outWidth; ow++, at += channels)
                {
                    int left = ow * stride - padding, w0 = Math.Max(left, 0), w1 = Math.Min(left + kw, width);
                    visitor.Visit(n, at, h0, h1, w0, w1);
                }
            }
    }

    private readonly ref struct MaxVisitor(ReadOnlySpan<float> x, Span<float> y, Span<int> argmax, int inputLength, int width,
        int channels) : IWindowVisitor
    {
        private readonly ReadOnlySpan<float> _x = x;
        private readonly Span<float> _y = y;
        private readonly Span<int> _argmax = argmax;

        public void Visit(int n, int at, int h0, int h1, int w0, int w1) => MaxWindow(_x.Slice(n * inputLength, inputLength),
            width, channels, h0, h1, w0, w1, _y.Slice(at, channels), _argmax.Slice(at, channels));
    }

    private readonly ref struct AverageVisitor(ReadOnlySpan<float> x, Span<float> y, int inputLength, int width, int channels,
        float divisor) : IWindowVisitor
    {
        private readonly ReadOnlySpan<float> _x = x;
        private readonly Span<float> _y = y;

        public void Visit(int n, int at, int h0, int h1, int w0, int w1)
        {
            ReadOnlySpan<float> sample = _x.Slice(n * inputLength, inputLength);
            Span<float> output = _y.Slice(at, channels);
            output.Clear();
            for (int h = h0; h < h1; h++)
                for (int w = w0; w < w1; w++)
                    TensorPrimitives.Add(output, sample.Slice((h * width + w) * channels, channels), output);
            TensorPrimitives.Divide(output, divisor, output);
        }
    }

    private readonly ref struct AverageGradientVisitor(ReadOnlySpan<float> dy, Span<float> dx, int inputLength, int width,
        int channels, float divisor) : IWindowVisitor
    {
        private readonly ReadOnlySpan<float> _dy = dy;
        private readonly Span<float> _dx = dx;

        public void Visit(int n, int at, int h0, int h1, int w0, int w1)
        {
            Span<float> sample = _dx.Slice(n * inputLength, inputLength);
            for (int h = h0; h < h1; h++)
                for (int w = w0; w < w1; w++)
                    AddQuotient(_dy.Slice(at, channels), divisor, sample.Slice((h * width + w) * channels, channels));
        }
    }

    /// <summary>
    /// One output pixel of max pooling. PyTorch's rule per element, in (h, w) order: take v if v &gt; best or v is NaN;
    /// best starts at −inf with the window's first in-bounds position. Widest vector first; a last partial vector
    /// overlaps the previous one (same inputs, same result); fewer than 8 channels go scalar.
    /// </summary>
    private static void MaxWindow(ReadOnlySpan<float> sample, int width, int channels, int h0, int h1, int w0, int w1,
        Span<float> y, Span<int> argmax)
    {
        Debug.Assert(h0 < h1 && w0 < w1, "ValidatePooling keeps every window partly inside the input");
        int origin = (h0 * width + w0) * channels;
        if (Vector512.IsHardwareAccelerated && channels >= Vector512<float>.Count)
        {
            for (int c = 0; c < channels; c += Vector512<float>.Count)
            {
                int at = Math.Min(c, channels - Vector512<float>.Count);
                var best = Vector512.Create(float.NegativeInfinity);
                var bestAt = Vector512.Create(origin + at) + Vector512<int>.Indices;
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++)
                    {
                        int offset = (h * width + w) * channels + at;
                        var v = Vector512.Create(sample.Slice(offset, Vector512<float>.Count));
                        var wins = Vector512.GreaterThan(v, best) | Vector512.IsNaN(v);
                        best = Vector512.ConditionalSelect(wins, v, best);
                        bestAt = Vector512.ConditionalSelect(wins.AsInt32(), Vector512.Create(offset) + Vector512<int>.Indices, bestAt);
                    }
                best.CopyTo(y[at..]);
                bestAt.CopyTo(argmax[at..]);
            }
            return;
        }
        if (Vector256.IsHardwareAccelerated && channels >= Vector256<float>.Count)
        {
            for (int c = 0; c < channels; c += Vector256<float>.Count)
            {
                int at = Math.Min(c, channels - Vector256<float>.Count);
                var best = Vector256.Create(float.NegativeInfinity);
                var bestAt = Vector256.Create(origin + at) + Vector256<int>.Indices;
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++)
                    {
                        int offset = (h * width + w) * channels + at;
                        var v = Vector256.Create(sample.Slice(offset, Vector256<float>.Count));
                        var wins = Vector256.GreaterThan(v, best) | Vector256.IsNaN(v);
                        best = Vector256.ConditionalSelect(wins, v, best);
                        bestAt = Vector256.ConditionalSelect(wins.AsInt32(), Vector256.Create(offset) + Vector256<int>.Indices, bestAt);
                    }
                best.CopyTo(y[at..]);
                bestAt.CopyTo(argmax[at..]);
            }
            return;
        }
        for (int c = 0; c < channels; c++)
        {
            float best = float.NegativeInfinity;
            int bestAt = origin + c;
            for (int h = h0; h < h1; h++)
                for (int w = w0; w < w1; w++)
                {
                    int offset = (h * width + w) * channels + c;
                    float v = sample[offset];
                    if (v > best || float.IsNaN(v)) (best, bestAt) = (v, offset);
                }
            y[c] = best;
            argmax[c] = bestAt;
        }
    }

    /// <summary>target += source / divisor (a division, as PyTorch does); widest vector first, scalar tail.</summary>
    private static void AddQuotient(ReadOnlySpan<float> source, float divisor, Span<float> target)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i <= source.Length - Vector512<float>.Count; i += Vector512<float>.Count)
                (Vector512.Create(target[i..]) + Vector512.Create(source[i..]) / divisor).CopyTo(target[i..]);
        if (Vector256.IsHardwareAccelerated)
            for (; i <= source.Length - Vector256<float>.Count; i += Vector256<float>.Count)
                (Vector256.Create(target[i..]) + Vector256.Create(source[i..]) / divisor).CopyTo(target[i..]);
        for (; i < source.Length; i++) target[i] += source[i] / divisor;
    }

    private static void Check(in ConvGeometry g, int rows, int inputLength, string inputName, int outputLength, string outputName)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        if (!g.IsValid || g.OutChannels != g.InChannels || 2 * g.Padding > Math.Min(g.KernelHeight, g.KernelWidth))
            throw new ArgumentException($"{g} is not a usable pooling window; ConvGeometry.ValidatePooling says why", nameof(g));
        Need(inputLength, (long)rows * g.InputLength, inputName, "rows·InputLength");
        Need(outputLength, (long)rows * g.OutputLength, outputName, "rows·OutputLength");
    }

    private static int CheckGlobal(int imageLength, int meanLength, int rows, int height, int width, int channels,
        string imageName, string meanName)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        Need(imageLength, (long)rows * height * width * channels, imageName, "rows·height·width·channels");
        Need(meanLength, (long)rows * channels, meanName, "rows·channels");
        return height * width;
    }

    private static void Need(int length, long needed, string name, string rule)
    {
        if (length < needed) throw new ArgumentException($"{name} has {length} elements, needs {rule} = {needed}", name);
    }
}
