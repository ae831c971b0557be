// im2col and its adjoint col2im on channels-last images: a patch is laid out (kh, kw, cin), so for each kernel row
// the in-bounds kw form one contiguous run of the input. Runs are short (3·Cin floats for a 3×3 kernel), so they
// are copied by inlined vector loops rather than by calls to memmove.
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace DistTrain.Core.Kernels;

internal static unsafe class Im2Col
{
    /// <summary>
    /// columns[count·Ho·Wo][KH·KW·Cin]: row (n, oh, ow) holds the window at (oh·S − P, ow·S − P) of sample n, zero
    /// where it overhangs the input.
    /// </summary>
    public static void Gather(in ConvGeometry g, ReadOnlySpan<float> x, int count, Span<float> columns)
    {
        // Locals, not properties, in the loops: OutHeight and OutWidth each cost a 64-bit division.
        int cin = g.InChannels, kh = g.KernelHeight, kw = g.KernelWidth, width = g.InWidth, patch = g.PatchLength;
        int height = g.InHeight, outHeight = g.OutHeight, outWidth = g.OutWidth, inputLength = g.InputLength;
        int stride = g.Stride, padding = g.Padding;
        Debug.Assert(x.Length >= count * g.InputLength && columns.Length >= count * g.OutHeight * g.OutWidth * patch);
        if (cin * kw < Vector512<float>.Count)
        {
            GatherNarrow(g, x, count, columns);
            return;
        }
        fixed (float* px = x, pc = columns)
        {
            float* row = pc;
            for (int n = 0; n < count; n++)
            {
                float* sample = px + (nint)n * inputLength;
                for (int oh = 0; oh < outHeight; oh++)
                {
                    int top = oh * stride - padding;
                    for (int ow = 0; ow < outWidth; ow++, row += patch)
                    {
                        int left = ow * stride - padding, kw0 = Math.Max(0, -left), kw1 = Math.Min(kw, width - left);
                        for (int i = 0; i < kh; i++)
                        {
                            float* line = row + i * kw * cin;
                            int ih = top + i;
                            if ((uint)ih >= (uint)height || kw0 >= kw1)
                            {
                                Zero(line, kw * cin);
                                continue;
                            }
                            if (kw0 > 0) Zero(line, kw0 * cin);
                            Copy(sample + ((nint)ih * width + left + kw0) * cin, line + kw0 * cin, (kw1 - kw0) * cin);
                            if (kw1 < kw) Zero(line + kw1 * cin, (kw - kw1) * cin);
                        }
                    }
                }
            }
        }
    }

    /// <summary>
    /// Gather for inputs whose kernel-row runs are shorter than a vector (Cin·KW &lt; 16, a first layer): per output row,
    /// tap by tap, a strided copy across the row's pixels; per-pixel runs of 3 floats measured ~3× slower.
    /// </summary>
    private static void GatherNarrow(in ConvGeometry g, ReadOnlySpan<float> x, int count, Span<float> columns)
    {
        int cin = g.InChannels, kh = g.KernelHeight, kw = g.KernelWidth, width = g.InWidth, patch = g.PatchLength;
        int height = g.InHeight, outHeight = g.OutHeight, outWidth = g.OutWidth, inputLength = g.InputLength;
        int stride = g.Stride, padding = g.Padding, step = stride * cin;
        fixed (float* px = x, pc = columns)
            for (int n = 0; n < count; n++)
                for (int oh = 0; oh < outHeight; oh++)
                {
                    float* block = pc + ((nint)n * outHeight + oh) * outWidth * patch;
                    // Without padding every window lies inside the input and every element below is written.
                    if (padding > 0) Zero(block, outWidth * patch);
                    int top = oh * stride - padding, i0 = Math.Max(0, -top), i1 = Math.Min(kh, height - top);
                    for (int i = i0; i < i1; i++)
                        for (int j = 0; j < kw; j++)
                        {
                            var (first, last) = OutputColumns(j, padding, stride, width, outWidth);
                            float* input = px + (nint)n * inputLength + ((top + i) * width + first * stride - padding + j) * cin;
                            for (int c = 0; c < cin; c++)
                            {
                                float* source = input + c, target = block + (nint)first * patch + (i * kw + j) * cin + c;
                                for (int ow = first; ow < last; ow++, source += step, target += patch) *target = *source;
                            }
                        }
                }
    }

    /// <summary>Output columns [first, last) whose kernel column j lands inside the input (empty when none does).</summary>
    public static (int First, int Last) OutputColumns(int j, int padding, int stride, int width, int outWidth)
    {
        // ow·S − P + j ∈ [0, width): ow ≥ ceil((P − j) / S) and ow ≤ floor((width − 1 + P − j) / S).
        int low = padding - j, high = width - 1 + padding - j;
        int first = low <= 0 ? 0 : (low + stride - 1) / stride;
        int last = high < 0 ? 0 : Math.Min(outWidth, high / stride + 1);
        return (first, Math.Max(first, last));
    }

    /// <summary>
    /// dx = col2im(columns), overwriting dx: each patch element added onto the input element it was copied from,
    /// patches in row order and (kh, kw) within each, so overlapping windows always sum in the same order.
    /// </summary>
    public static void Scatter(in ConvGeometry g, ReadOnlySpan<float> columns, int count, Span<float> dx)
    {
        // Locals, not properties, in the loops: OutHeight and OutWidth each cost a 64-bit division.
        int cin = g.InChannels, kh = g.KernelHeight, kw = g.KernelWidth, width = g.InWidth, patch = g.PatchLength;
        int height = g.InHeight, outHeight = g.OutHeight, outWidth = g.OutWidth, inputLength = g.InputLength;
        int stride = g.Stride, padding = g.Padding;
        Debug.Assert(dx.Length >= count * g.InputLength && columns.Length >= count * g.OutHeight * g.OutWidth * patch);
        dx[..(count * inputLength)].Clear();
        fixed (float* pd = dx, pc = columns)
        {
            float* row = pc;
            for (int n = 0; n < count; n++)
            {
                float* sample = pd + (nint)n * inputLength;
                for (int oh = 0; oh < outHeight; oh++)
                {
                    int top = oh * stride - padding, i0 = Math.Max(0, -top), i1 = Math.Min(kh, height - top);
                    for (int ow = 0; ow < outWidth; ow++, row += patch)
                    {
                        int left = ow * stride - padding, kw0 = Math.Max(0, -left), kw1 = Math.Min(kw, width - left);
                        if (kw0 >= kw1) continue;
                        for (int i = i0; i < i1; i++)
                            Add(row + (i * kw + kw0) * cin, sample + ((nint)(top + i) * width + left + kw0) * cin, (kw1 - kw0) * cin);
                    }
                }
            }
        }
    }

    /// <summary>Copies count floats; the last vector overlaps the one before it (a copy may be repeated).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Copy(float* source, float* target, int count)
    {
        if (Vector512.IsHardwareAccelerated && count >= Vector512<float>.Count)
        {
            for (int i = 0; i < count - Vector512<float>.Count; i += Vector512<float>.Count)
                Vector512.Store(Vector512.Load(source + i), target + i);
            Vector512.Store(Vector512.Load(source + count - Vector512<float>.Count), target + count - Vector512<float>.Count);
        }
        else if (Vector256.IsHardwareAccelerated && count >= Vector256<float>.Count)
        {
            for (int i = 0; i < count - Vector256<float>.Count; i += Vector256<float>.Count)
                Vector256.Store(Vector256.Load(source + i), target + i);
            Vector256.Store(Vector256.Load(source + count - Vector256<float>.Count), target + count - Vector256<float>.Count);
        }
        else
            for (int i = 0; i < count; i++) target[i] = source[i];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Zero(float* target, int count)
    {
        if (Vector512.IsHardwareAccelerated && count >= Vector512<float>.Count)
        {
            for (int i = 0; i < count - Vector512<float>.Count; i += Vector512<float>.Count)
                Vector512.Store(Vector512<float>.Zero, target + i);
            Vector512.Store(Vector512<float>.Zero, target + count - Vector512<float>.Count);
        }
        else
            for (int i = 0; i < count; i++) target[i] = 0;
    }

    /// <summary>target += source; an add must not be repeated, so the tail is scalar rather than an overlapping vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Add(float* source, float* target, int count)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i <= count - Vector512<float>.Count; i += Vector512<float>.Count)
                Vector512.Store(Vector512.Load(target + i) + Vector512.Load(source + i), target + i);
        if (Vector256.IsHardwareAccelerated)
            for (; i <= count - Vector256<float>.Count; i += Vector256<float>.Count)
                Vector256.Store(Vector256.Load(target + i) + Vector256.Load(source + i), target + i);
        for (; i < count; i++) target[i] += source[i];
    }
}
