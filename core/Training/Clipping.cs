// Gradient norms and clipping on the flat (averaged) gradient buffer: the global L2 norm, per-layer norms for
// the dashboard's vanishing/exploding alerts, clip-by-global-norm, and the finiteness check that skips a step.
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace DistTrain.Core.Training;

public static class Clipping
{
    /// <summary>
    /// ‖g‖₂ accumulated in float64 in a fixed order: element i goes to partial sum i mod 8 (for i below the last
    /// multiple of 8), the partial sums are combined pairwise ((0+1)+(2+3))+((4+5)+(6+7)), then the tail is
    /// added in index order. The order depends only on the length, so the bits are the same on every thread,
    /// machine and SIMD width (each float² is exact in double, so FMA or not makes no difference either).
    /// </summary>
    public static double GlobalNorm(ReadOnlySpan<float> g) => Math.Sqrt(SumOfSquares(g));

    /// <summary>
    /// g ← min(1, c/‖g‖)·g (Pascanu et al. 2013); returns the pre-clip norm. No-op when ‖g‖ ≤ c, when
    /// <paramref name="maxNorm"/> is ≤ 0 or NaN (clipping off), or when the norm is not finite — then the
    /// caller sees the non-finite norm and skips the step rather than scaling NaNs around.
    /// </summary>
    public static double ClipByGlobalNorm(Span<float> g, double maxNorm)
    {
        double norm = GlobalNorm(g);
        if (!(maxNorm > 0) || !double.IsFinite(norm) || norm <= maxNorm) return norm;
        TensorPrimitives.Multiply(g, (float)(maxNorm / norm), g);
        return norm;
    }

    /// <summary>norms[k] = ‖g[offset_k .. offset_k + length_k)‖₂, each in the order of <see cref="GlobalNorm"/>.</summary>
    public static void LayerNorms(ReadOnlySpan<float> g, ReadOnlySpan<(int offset, int length)> slices, Span<double> norms)
    {
        if (norms.Length != slices.Length)
            throw new ArgumentException($"norms has {norms.Length} entries for {slices.Length} slices", nameof(norms));
        for (int k = 0; k < slices.Length; k++)
            norms[k] = GlobalNorm(g.Slice(slices[k].offset, slices[k].length));
    }

    /// <summary>true when no element is NaN or ±∞ (so true for an empty span).</summary>
    // TensorPrimitives.IsFiniteAll answers false for an empty span; an empty gradient has nothing to skip.
    public static bool AllFinite(ReadOnlySpan<float> g) => g.IsEmpty || TensorPrimitives.IsFiniteAll(g);

    private static double SumOfSquares(ReadOnlySpan<float> g)
    {
        const int Lanes = 8;
        int n = g.Length, i = 0;
        ref float x = ref MemoryMarshal.GetReference(g);
        double sum;
        if (Vector512.IsHardwareAccelerated)
        {
            // 16 floats → two 8-double halves added one after the other: the same per-lane order as 8 at a time.
            var acc = Vector512<double>.Zero;
            for (; i <= n - 16; i += 16)
            {
                var v = Vector512.LoadUnsafe(ref x, (nuint)i);
                var lo = Vector512.WidenLower(v);
                var hi = Vector512.WidenUpper(v);
                acc += lo * lo;
                acc += hi * hi;
            }
            if (i <= n - Lanes)
            {
                var lo = Vector512.WidenLower(Vector512.Create(Vector256.LoadUnsafe(ref x, (nuint)i), Vector256<float>.Zero));
                acc += lo * lo;
                i += Lanes;
            }
            sum = Combine(acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7]);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            // Lanes 0–3 in one accumulator, 4–7 in the other.
            Vector256<double> acc0 = Vector256<double>.Zero, acc1 = Vector256<double>.Zero;
            for (; i <= n - Lanes; i += Lanes)
            {
                var v = Vector256.LoadUnsafe(ref x, (nuint)i);
                var lo = Vector256.WidenLower(v);
                var hi = Vector256.WidenUpper(v);
                acc0 += lo * lo;
                acc1 += hi * hi;
            }
            sum = Combine(acc0[0], acc0[1], acc0[2], acc0[3], acc1[0], acc1[1], acc1[2], acc1[3]);
        }
        else
        {
            Span<double> acc = stackalloc double[Lanes];
            acc.Clear();
            for (; i <= n - Lanes; i += Lanes)
                for (int lane = 0; lane < Lanes; lane++)
                {
                    double v = Unsafe.Add(ref x, i + lane);
                    acc[lane] += v * v;
                }
            sum = Combine(acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7]);
        }
        for (; i < n; i++)
        {
            double v = Unsafe.Add(ref x, i);
            sum += v * v;
        }
        return sum;
    }

    private static double Combine(double a0, double a1, double a2, double a3, double a4, double a5, double a6,
        double a7) => ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
}
