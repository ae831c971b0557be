// Packs a kc-deep slab of an operand into micro-panels [kc][width] (zero-padded), the layout the micro-kernels
// stream. The transposed forms of the public API are absorbed here, so no transpose is ever materialised.
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DistTrain.Core.Kernels;

internal static unsafe class GemmPacking
{
    /// <summary>
    /// Packs <paramref name="count"/> lines (rows of A or columns of B) in panels of <paramref name="width"/>.
    /// kContiguous: line r, depth p lives at src[r·ld + p] (A of A·Bᵀ/A·B, B of A·Bᵀ); otherwise at src[p·ld + r].
    /// Panel q occupies dst[q·kc·width ..], element (p, r) at p·width + r; lines past count are zeros.
    /// </summary>
    public static void Pack(in GemmOperand src, int line0, int depth0, int count, int kc, int width, float* dst)
    {
        if (!src.IsBytes) Pack(src.At(line0, depth0), src.Ld, src.KContiguous, count, kc, width, dst);
        else if (src.KContiguous) PackBytesTransposing(src, line0, depth0, count, kc, width, dst);
        else PackBytesCopying(src, line0, depth0, count, kc, width, dst);
    }

    /// <summary>
    /// A k-contiguous byte operand (the batch as A of X·Wᵀ): each line's kc bytes are widened into an L1-resident
    /// block of floats (a panel's worth: MR × kc, 8 KiB at most), which is then packed as a float operand would be.
    /// </summary>
    [SkipLocalsInit]
    private static void PackBytesTransposing(in GemmOperand src, int line0, int depth0, int count, int kc, int width, float* dst)
    {
        float* block = stackalloc float[width * kc];
        for (int r0 = 0; r0 < count; r0 += width, dst += kc * width)
        {
            int lines = Math.Min(width, count - r0);
            for (int r = 0; r < lines; r++) ElementWise.Widen(src.ByteRow(line0 + r0 + r) + depth0, kc, src.Divisor, block + r * kc);
            PackTransposing(block, kc, lines, kc, width, dst);
        }
    }

    /// <summary>
    /// A byte operand whose depth runs across rows (the batch as B of dYᵀ·X): each depth's run of count bytes is widened
    /// once into floats, then spread over the panels as <see cref="PackCopying"/> spreads a float row.
    /// </summary>
    [SkipLocalsInit]
    private static void PackBytesCopying(in GemmOperand src, int line0, int depth0, int count, int kc, int width, float* dst)
    {
        float* run = stackalloc float[(count + width - 1) / width * width];
        for (int p = 0; p < kc; p++)
        {
            ElementWise.Widen(src.ByteRow(depth0 + p) + line0, count, src.Divisor, run);
            float* panel = dst + p * width;
            for (int r0 = 0; r0 < count; r0 += width, panel += kc * width)
            {
                int lines = Math.Min(width, count - r0), r = 0;
                for (; r + 8 <= lines && Vector256.IsHardwareAccelerated; r += 8) Vector256.Load(run + r0 + r).Store(panel + r);
                for (; r < lines; r++) panel[r] = run[r0 + r];
                for (; r < width; r++) panel[r] = 0;
            }
        }
    }

    private static void Pack(float* src, int ld, bool kContiguous, int count, int kc, int width, float* dst)
    {
        for (int r0 = 0; r0 < count; r0 += width, dst += kc * width)
        {
            int lines = Math.Min(width, count - r0);
            if (kContiguous) PackTransposing(src + (nint)r0 * ld, ld, lines, kc, width, dst);
            else PackCopying(src + r0, ld, lines, kc, width, dst);
        }
    }

    /// <summary>dst[p·width + r] = src[p·ld + r]: each depth step is one contiguous run of the source.</summary>
    private static void PackCopying(float* src, int ld, int lines, int kc, int width, float* dst)
    {
        Debug.Assert(width % 8 == 0);
        if (lines == width && Vector256.IsHardwareAccelerated)
        {
            for (int p = 0; p < kc; p++, src += ld, dst += width)
                for (int r = 0; r < width; r += 8) Vector256.Load(src + r).Store(dst + r);
            return;
        }
        for (int p = 0; p < kc; p++, src += ld, dst += width)
        {
            int r = 0;
            for (; r < lines; r++) dst[r] = src[r];
            for (; r < width; r++) dst[r] = 0;
        }
    }

    /// <summary>
    /// dst[p·width + r] = src[r·ld + p]. With AVX, groups of 8 lines go through 8×8 register transposes
    /// (contiguous loads, contiguous stores); the depth tail (kc mod 8) and partial groups are scalar.
    /// </summary>
    private static void PackTransposing(float* src, int ld, int lines, int kc, int width, float* dst)
    {
        int r0 = 0;
        if (Avx.IsSupported)
        {
            int kc8 = kc & ~7;
            for (; r0 + 8 <= lines; r0 += 8)
            {
                float* s = src + (nint)r0 * ld;
                for (int p = 0; p < kc8; p += 8)
                    Transpose8x8(s + p, ld, dst + p * width + r0, width);
            }
            for (int p = kc8; p < kc; p++)
                for (int r = 0; r < r0; r++) dst[p * width + r] = src[(nint)r * ld + p];
        }
        for (int r = r0; r < lines; r++)
        {
            float* s = src + (nint)r * ld;
            for (int p = 0; p < kc; p++) dst[p * width + r] = s[p];
        }
        for (int r = lines; r < width; r++)
            for (int p = 0; p < kc; p++) dst[p * width + r] = 0;
    }

    /// <summary>Eight rows of 8 (stride ld) in, eight columns out (stride width): the classic unpack/shuffle/permute.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(float* s, int ld, float* d, int width)
    {
        Vector256<float> r0 = Avx.LoadVector256(s), r1 = Avx.LoadVector256(s + ld),
            r2 = Avx.LoadVector256(s + 2 * ld), r3 = Avx.LoadVector256(s + 3 * ld),
            r4 = Avx.LoadVector256(s + 4 * ld), r5 = Avx.LoadVector256(s + 5 * ld),
            r6 = Avx.LoadVector256(s + 6 * ld), r7 = Avx.LoadVector256(s + 7 * ld);
        Vector256<float> t0 = Avx.UnpackLow(r0, r1), t1 = Avx.UnpackHigh(r0, r1),
            t2 = Avx.UnpackLow(r2, r3), t3 = Avx.UnpackHigh(r2, r3),
            t4 = Avx.UnpackLow(r4, r5), t5 = Avx.UnpackHigh(r4, r5),
            t6 = Avx.UnpackLow(r6, r7), t7 = Avx.UnpackHigh(r6, r7);
        Vector256<float> u0 = Avx.Shuffle(t0, t2, 0x44), u1 = Avx.Shuffle(t0, t2, 0xEE),
            u2 = Avx.Shuffle(t1, t3, 0x44), u3 = Avx.Shuffle(t1, t3, 0xEE),
            u4 = Avx.Shuffle(t4, t6, 0x44), u5 = Avx.Shuffle(t4, t6, 0xEE),
            u6 = Avx.Shuffle(t5, t7, 0x44), u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(d, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(d + width, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(d + 2 * width, Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(d + 3 * width, Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(d + 4 * width, Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(d + 5 * width, Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(d + 6 * width, Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(d + 7 * width, Avx.Permute2x128(u3, u7, 0x31));
    }
}
