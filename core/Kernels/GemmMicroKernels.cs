// Register-blocked micro-kernels: one MR×NR tile of C from packed panels (A as [kc][MR], B as [kc][NR]).
// Edges never reach these: the driver zero-pads partial panels and routes partial tiles through a scratch tile.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace DistTrain.Core.Kernels;

/// <summary>The instruction set chosen once per process; it fixes the tile shape and hence the exact bits.</summary>
internal enum GemmPath { Scalar, Vector128, Avx2, Avx512 }

internal static unsafe class GemmMicroKernels
{
    /// <summary>Rows of a micro-tile; 8 on every path so one packing layout (8×8 transposes) serves them all.</summary>
    public const int MR = 8;

    // Widest first. Vector512 needs only AVX-512F; AVX2 needs FMA too, or its products would round twice.
    public static readonly GemmPath Path =
        Avx512F.IsSupported ? GemmPath.Avx512
        : Avx2.IsSupported && Fma.IsSupported ? GemmPath.Avx2
        : Vector128.IsHardwareAccelerated ? GemmPath.Vector128
        : GemmPath.Scalar;

    /// <summary>Columns of a micro-tile: two vectors wide, so each broadcast of A feeds two FMAs.</summary>
    public static readonly int NR = Path switch { GemmPath.Avx512 => 32, GemmPath.Avx2 => 16, _ => 8 };

    /// <summary>
    /// Columns of the narrow tile used when a product has at most this many columns (the 10-wide output layer):
    /// one AVX-512 vector instead of two, so a 10-column product wastes 6 lanes of 16 rather than 22 of 32.
    /// Other paths keep <see cref="NR"/>. Each element's FMA chain is the same in both tiles, so are the bits.
    /// </summary>
    public static readonly int NarrowNR = Path == GemmPath.Avx512 ? 16 : NR;

    /// <summary>The tile width for a product (or column slab) <paramref name="columns"/> wide.</summary>
    public static int TileWidth(int columns) => columns <= NarrowNR ? NarrowNR : NR;

    // SSE-only x86 has no FMA: Vector128.FusedMultiplyAdd would be emulated in software there.
    private static readonly bool Fused128 = Fma.IsSupported || AdvSimd.Arm64.IsSupported;

    /// <summary>C[0..MR)×[0..NR) (+)= Σ_p a[p][·] ⊗ b[p][·], p ascending: the reduction order is fixed here.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Tile(int kc, float* a, float* b, float* c, int ldc, bool overwrite)
    {
        if (Path == GemmPath.Avx512) Tile8x32(kc, a, b, c, ldc, overwrite);
        else if (Path == GemmPath.Avx2) Tile8x16(kc, a, b, c, ldc, overwrite);
        else if (Path == GemmPath.Vector128) Tile8x8Vector128(kc, a, b, c, ldc, overwrite);
        else Tile8x8Scalar(kc, a, b, c, ldc, overwrite);
    }

    /// <summary>The tile <paramref name="nr"/> columns wide: <see cref="NR"/>, or <see cref="NarrowNR"/> where it differs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Tile(int nr, int kc, float* a, float* b, float* c, int ldc, bool overwrite)
    {
        if (nr == NR) Tile(kc, a, b, c, ldc, overwrite);
        else Tile8x16Avx512(kc, a, b, c, ldc, overwrite);
    }

    /// <summary>AVX-512, one vector of columns: 8 zmm accumulators, enough independent FMAs to cover their latency.</summary>
    private static void Tile8x16Avx512(int kc, float* a, float* b, float* c, int ldc, bool overwrite)
    {
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default,
            c4 = default, c5 = default, c6 = default, c7 = default;
        for (int p = 0; p < kc; p++, a += MR, b += 16)
        {
            Vector512<float> b0 = Vector512.Load(b);
            c0 = Vector512.FusedMultiplyAdd(Vector512.Create(a[0]), b0, c0);
            c1 = Vector512.FusedMultiplyAdd(Vector512.Create(a[1]), b0, c1);
            c2 = Vector512.FusedMultiplyAdd(Vector512.Create(a[2]), b0, c2);
            c3 = Vector512.FusedMultiplyAdd(Vector512.Create(a[3]), b0, c3);
            c4 = Vector512.FusedMultiplyAdd(Vector512.Create(a[4]), b0, c4);
            c5 = Vector512.FusedMultiplyAdd(Vector512.Create(a[5]), b0, c5);
            c6 = Vector512.FusedMultiplyAdd(Vector512.Create(a[6]), b0, c6);
            c7 = Vector512.FusedMultiplyAdd(Vector512.Create(a[7]), b0, c7);
        }
        Store(c, c0, overwrite); c += ldc;
        Store(c, c1, overwrite); c += ldc;
        Store(c, c2, overwrite); c += ldc;
        Store(c, c3, overwrite); c += ldc;
        Store(c, c4, overwrite); c += ldc;
        Store(c, c5, overwrite); c += ldc;
        Store(c, c6, overwrite); c += ldc;
        Store(c, c7, overwrite);
    }

    /// <summary>AVX-512: 16 zmm accumulators + 2 B vectors + 1 broadcast out of 32 registers.</summary>
    private static void Tile8x32(int kc, float* a, float* b, float* c, int ldc, bool overwrite)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
            c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default,
            c60 = default, c61 = default, c70 = default, c71 = default;
        for (int p = 0; p < kc; p++, a += MR, b += 32)
        {
            Vector512<float> b0 = Vector512.Load(b), b1 = Vector512.Load(b + 16), x;
            x = Vector512.Create(a[0]); c00 = Vector512.FusedMultiplyAdd(x, b0, c00); c01 = Vector512.FusedMultiplyAdd(x, b1, c01);
            x = Vector512.Create(a[1]); c10 = Vector512.FusedMultiplyAdd(x, b0, c10); c11 = Vector512.FusedMultiplyAdd(x, b1, c11);
            x = Vector512.Create(a[2]); c20 = Vector512.FusedMultiplyAdd(x, b0, c20); c21 = Vector512.FusedMultiplyAdd(x, b1, c21);
            x = Vector512.Create(a[3]); c30 = Vector512.FusedMultiplyAdd(x, b0, c30); c31 = Vector512.FusedMultiplyAdd(x, b1, c31);
            x = Vector512.Create(a[4]); c40 = Vector512.FusedMultiplyAdd(x, b0, c40); c41 = Vector512.FusedMultiplyAdd(x, b1, c41);
            x = Vector512.Create(a[5]); c50 = Vector512.FusedMultiplyAdd(x, b0, c50); c51 = Vector512.FusedMultiplyAdd(x, b1, c51);
            x = Vector512.Create(a[6]); c60 = Vector512.FusedMultiplyAdd(x, b0, c60); c61 = Vector512.FusedMultiplyAdd(x, b1, c61);
            x = Vector512.Create(a[7]); c70 = Vector512.FusedMultiplyAdd(x, b0, c70); c71 = Vector512.FusedMultiplyAdd(x, b1, c71);
        }
        Store(c, c00, overwrite); Store(c + 16, c01, overwrite); c += ldc;
        Store(c, c10, overwrite); Store(c + 16, c11, overwrite); c += ldc;
        Store(c, c20, overwrite); Store(c + 16, c21, overwrite); c += ldc;
        Store(c, c30, overwrite); Store(c + 16, c31, overwrite); c += ldc;
        Store(c, c40, overwrite); Store(c + 16, c41, overwrite); c += ldc;
        Store(c, c50, overwrite); Store(c + 16, c51, overwrite); c += ldc;
        Store(c, c60, overwrite); Store(c + 16, c61, overwrite); c += ldc;
        Store(c, c70, overwrite); Store(c + 16, c71, overwrite);
    }

    /// <summary>AVX2: two 4-row halves, so 8 ymm accumulators + operands fit the 16 registers without spills.</summary>
    private static void Tile8x16(int kc, float* a, float* b, float* c, int ldc, bool overwrite)
    {
        for (int half = 0; half < 2; half++, a += 4, c += 4 * ldc)
        {
            Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default,
                c20 = default, c21 = default, c30 = default, c31 = default;
            float* ap = a, bp = b;
            for (int p = 0; p < kc; p++, ap += MR, bp += 16)
            {
                Vector256<float> b0 = Vector256.Load(bp), b1 = Vector256.Load(bp + 8), x;
                x = Vector256.Create(ap[0]); c00 = Fma.MultiplyAdd(x, b0, c00); c01 = Fma.MultiplyAdd(x, b1, c01);
                x = Vector256.Create(ap[1]); c10 = Fma.MultiplyAdd(x, b0, c10); c11 = Fma.MultiplyAdd(x, b1, c11);
                x = Vector256.Create(ap[2]); c20 = Fma.MultiplyAdd(x, b0, c20); c21 = Fma.MultiplyAdd(x, b1, c21);
                x = Vector256.Create(ap[3]); c30 = Fma.MultiplyAdd(x, b0, c30); c31 = Fma.MultiplyAdd(x, b1, c31);
            }
            float* cp = c;
            Store(cp, c00, overwrite); Store(cp + 8, c01, overwrite); cp += ldc;
            Store(cp, c10, overwrite); Store(cp + 8, c11, overwrite); cp += ldc;
            Store(cp, c20, overwrite); Store(cp + 8, c21, overwrite); cp += ldc;
            Store(cp, c30, overwrite); Store(cp + 8, c31, overwrite);
        }
    }

    /// <summary>Portable 128-bit path (SSE, NEON), halved like AVX2 for 16-register targets.</summary>
    private static void Tile8x8Vector128(int kc, float* a, float* b, float* c, int ldc, bool overwrite)
    {
        for (int half = 0; half < 2; half++, a += 4, c += 4 * ldc)
        {
            Vector128<float> c00 = default, c01 = default, c10 = default, c11 = default,
                c20 = default, c21 = default, c30 = default, c31 = default;
            float* ap = a, bp = b;
            for (int p = 0; p < kc; p++, ap += MR, bp += 8)
            {
                Vector128<float> b0 = Vector128.Load(bp), b1 = Vector128.Load(bp + 4), x;
                x = Vector128.Create(ap[0]); c00 = MulAdd(x, b0, c00); c01 = MulAdd(x, b1, c01);
                x = Vector128.Create(ap[1]); c10 = MulAdd(x, b0, c10); c11 = MulAdd(x, b1, c11);
                x = Vector128.Create(ap[2]); c20 = MulAdd(x, b0, c20); c21 = MulAdd(x, b1, c21);
                x = Vector128.Create(ap[3]); c30 = MulAdd(x, b0, c30); c31 = MulAdd(x, b1, c31);
            }
            float* cp = c;
            Store(cp, c00, overwrite); Store(cp + 4, c01, overwrite); cp += ldc;
            Store(cp, c10, overwrite); Store(cp + 4, c11, overwrite); cp += ldc;
            Store(cp, c20, overwrite); Store(cp + 4, c21, overwrite); cp += ldc;
            Store(cp, c30, overwrite); Store(cp + 4, c31, overwrite);
        }
    }

    /// <summary>No SIMD at all (DOTNET_EnableHWIntrinsic=0): plain multiply then add, same order as above.</summary>
    private static void Tile8x8Scalar(int kc, float* a, float* b, float* c, int ldc, bool overwrite)
    {
        float* acc = stackalloc float[MR * 8];
        new Span<float>(acc, MR * 8).Clear();
        for (int p = 0; p < kc; p++, a += MR, b += 8)
            for (int r = 0; r < MR; r++)
            {
                float x = a[r];
                float* row = acc + r * 8;
                for (int j = 0; j < 8; j++) row[j] += x * b[j];
            }
        for (int r = 0; r < MR; r++)
            for (int j = 0; j < 8; j++)
                c[r * ldc + j] = overwrite ? acc[r * 8 + j] : c[r * ldc + j] + acc[r * 8 + j];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> MulAdd(Vector128<float> x, Vector128<float> y, Vector128<float> z) =>
        Fused128 ? Vector128.FusedMultiplyAdd(x, y, z) : x * y + z;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, Vector512<float> acc, bool overwrite) =>
        (overwrite ? acc : Vector512.Load(c) + acc).Store(c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, Vector256<float> acc, bool overwrite) =>
        (overwrite ? acc : Vector256.Load(c) + acc).Store(c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, Vector128<float> acc, bool overwrite) =>
        (overwrite ? acc : Vector128.Load(c) + acc).Store(c);
}
