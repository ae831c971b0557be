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
    /// ‖g‖₂ accumulated in float64 in a fixed order: element i goes to partial sum i mod 32 (for i below the last
    /// multiple of 32), the partial sums are combined pairwise ((0+1)+(2+3))+((4+5)+(6+7)) and so on up to 32, then
    /// the tail is added in index order. The order depends only on the length, so the bits are the same on every thread,
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
        ClipToNorm(g, norm, maxNorm);
        return norm;
    }

    /// <summary>
    /// ClipByGlobalNorm's scaling for a norm already measured: g ← (c/norm)·g when norm &gt; c &gt; 0 and finite; true
    /// when it scaled.
    /// </summary>
    public static bool ClipToNorm(Span<float> g, double norm, double maxNorm)
    {
        if (!(maxNorm > 0) || !double.IsFinite(norm) || norm <= maxNorm) return false;
        Kernels.ElementWise.Multiply(g, (float)(maxNorm / norm), g);
        return true;
    }

    /// <summary>
    /// <see cref="LayerNorms"/>, and the global norm from the same pass: when the slices tile g in order, ‖g‖₂ is the
    /// square root of their sums of squares added in slice order (each summed as <see cref="GlobalNorm"/> sums);
    /// otherwise <see cref="GlobalNorm"/>(g).
    /// </summary>
    public static double LayerAndGlobalNorms(ReadOnlySpan<float> g, ReadOnlySpan<(int offset, int length)> slices, Span<double> norms)
    {
        double total = LayerSquares(g, slices, norms);
        return Tiles(slices, g.Length) ? Math.Sqrt(total) : GlobalNorm(g);
    }

    /// <summary>Whether the slices cover [0, <paramref name="length"/>) in order, each beginning where the one before ended.</summary>
    public static bool Tiles(ReadOnlySpan<(int Offset, int Length)> slices, int length)
    {
        int end = 0;
        foreach (var (offset, count) in slices)
        {
            if (offset != end || count < 0) return false;
            end += count;
        }
        return end == length;
    }

    /// <summary>
    /// <see cref="LayerAndGlobalNorms"/> of slices that tile the vector, from their sums of squares taken elsewhere in
    /// <see cref="SquareSums"/>' order (BlockTree.CompleteInto takes them in the tree's last pass): the same bits.
    /// </summary>
    public static double NormsFromSquares(ReadOnlySpan<double> squares, Span<double> norms)
    {
        if (norms.Length != squares.Length)
            throw new ArgumentException($"norms has {norms.Length} entries for {squares.Length} slices", nameof(norms));
        double total = 0;
        for (int k = 0; k < squares.Length; k++)
        {
            norms[k] = Math.Sqrt(squares[k]);
            total += squares[k];
        }
        return Math.Sqrt(total);
    }

    /// <summary>norms[k] = ‖g[offset_k .. offset_k + length_k)‖₂, each in the order of <see cref="GlobalNorm"/>.</summary>
    public static void LayerNorms(ReadOnlySpan<float> g, ReadOnlySpan<(int offset, int length)> slices, Span<double> norms) =>
        LayerSquares(g, slices, norms);

    /// <summary>Fills the slices' norms; returns their sums of squares added in slice order.</summary>
    private static double LayerSquares(ReadOnlySpan<float> g, ReadOnlySpan<(int offset, int length)> slices, Span<double> norms)
    {
        if (norms.Length != slices.Length)
            throw new ArgumentException($"norms has {norms.Length} entries for {slices.Length} slices", nameof(norms));
        double total = 0;
        for (int k = 0; k < slices.Length; k++)
        {
            double squares = SumOfSquares(g.Slice(slices[k].offset, slices[k].length));
            norms[k] = Math.Sqrt(squares);
            total += squares;
        }
        return total;
    }

    /// <summary>true when no element is NaN or ±∞ (so true for an empty span).</summary>
    // TensorPrimitives.IsFiniteAll answers false for an empty span; an empty gradient has nothing to skip.
    public static bool AllFinite(ReadOnlySpan<float> g) => g.IsEmpty || TensorPrimitives.IsFiniteAll(g);

    private static double SumOfSquares(ReadOnlySpan<float> g)
    {
        Span<double> lanes = stackalloc double[SquareSums.Lanes];
        var sums = new SquareSums(lanes);
        int bulk = g.Length / SquareSums.Lanes * SquareSums.Lanes;
        sums.Add(g[..bulk]);
        return sums.Finish(g[bulk..]);
    }

    /// <summary>
    /// A sum of squares in <see cref="GlobalNorm"/>'s order, fed piece by piece, for a pass that produces the values
    /// (a decode) and can sum them while they are in cache: <see cref="Add"/> pieces whose lengths are multiples of
    /// <see cref="Lanes"/>, then <see cref="Finish"/> with what is left. The result has the bits of SumOfSquares over
    /// the whole.
    /// </summary>
    public ref struct SquareSums
    {
        /// <summary>Partial sums; element i of the bulk goes to partial i mod Lanes.</summary>
        public const int Lanes = 32;
        private readonly Span<double> _lanes;

        /// <param name="lanes">Lanes doubles of scratch (stackalloc), cleared here.</param>
        public SquareSums(Span<double> lanes)
        {
            if (lanes.Length != Lanes) throw new ArgumentException($"{lanes.Length} lanes given, {Lanes} needed", nameof(lanes));
            lanes.Clear();
            _lanes = lanes;
        }

        /// <summary>Adds a piece of the vector, continuing from the previous one.</summary>
        public readonly void Add(ReadOnlySpan<float> piece)
        {
            if (piece.Length % Lanes != 0)
                throw new ArgumentException($"a piece of {piece.Length} values is not a multiple of {Lanes}", nameof(piece));
            Accumulate(piece, _lanes);
        }

        /// <summary>Combines the partials pairwise and adds the squares of <paramref name="tail"/> (fewer than Lanes) in order.</summary>
        public readonly double Finish(ReadOnlySpan<float> tail)
        {
            if (tail.Length >= Lanes) throw new ArgumentException($"a tail of {tail.Length} values is not below {Lanes}", nameof(tail));
            var lanes = _lanes;
            // Pairwise: (0+1), (2+3), … then those in pairs, down to one.
            for (int width = Lanes; width > 1; width /= 2)
                for (int k = 0; k < width / 2; k++)
                    lanes[k] = lanes[2 * k] + lanes[2 * k + 1];
            double sum = lanes[0];
            foreach (float value in tail)
            {
                double v = value;
                sum += v * v;
            }
            return sum;
        }

        private static void Accumulate(ReadOnlySpan<float> g, Span<double> lanes)
        {
            // 32 independent partial sums: the additions of one partial depend on each other (4 cycles apiece), so
            // fewer partials leave the loop waiting on its own adds instead of on memory.
            int n = g.Length, i = 0;
            ref float x = ref MemoryMarshal.GetReference(g);
            ref double l = ref MemoryMarshal.GetReference(lanes);
            if (Vector512.IsHardwareAccelerated)
            {
                // Partials 0–7, 8–15, 16–23, 24–31 in the lanes of a0 … a3.
                Vector512<double> a0 = Vector512.LoadUnsafe(ref l, 0), a1 = Vector512.LoadUnsafe(ref l, 8),
                    a2 = Vector512.LoadUnsafe(ref l, 16), a3 = Vector512.LoadUnsafe(ref l, 24);
                for (; i < n; i += Lanes)
                {
                    var v = Vector512.LoadUnsafe(ref x, (nuint)i);
                    var w = Vector512.LoadUnsafe(ref x, (nuint)(i + 16));
                    var v0 = Vector512.WidenLower(v);
                    var v1 = Vector512.WidenUpper(v);
                    var w0 = Vector512.WidenLower(w);
                    var w1 = Vector512.WidenUpper(w);
                    a0 += v0 * v0;
                    a1 += v1 * v1;
                    a2 += w0 * w0;
                    a3 += w1 * w1;
                }
                a0.StoreUnsafe(ref l, 0);
                a1.StoreUnsafe(ref l, 8);
                a2.StoreUnsafe(ref l, 16);
                a3.StoreUnsafe(ref l, 24);
            }
            else if (Vector256.IsHardwareAccelerated)
            {
                // Partials 4k … 4k+3 in the lanes of a[k].
                Vector256<double> a0 = Vector256.LoadUnsafe(ref l, 0), a1 = Vector256.LoadUnsafe(ref l, 4),
                    a2 = Vector256.LoadUnsafe(ref l, 8), a3 = Vector256.LoadUnsafe(ref l, 12),
                    a4 = Vector256.LoadUnsafe(ref l, 16), a5 = Vector256.LoadUnsafe(ref l, 20),
                    a6 = Vector256.LoadUnsafe(ref l, 24), a7 = Vector256.LoadUnsafe(ref l, 28);
                for (; i < n; i += Lanes)
                {
                    var v = Vector256.LoadUnsafe(ref x, (nuint)i);
                    var w = Vector256.LoadUnsafe(ref x, (nuint)(i + 8));
                    var y = Vector256.LoadUnsafe(ref x, (nuint)(i + 16));
                    var z = Vector256.LoadUnsafe(ref x, (nuint)(i + 24));
                    var v0 = Vector256.WidenLower(v);
                    var v1 = Vector256.WidenUpper(v);
                    var w0 = Vector256.WidenLower(w);
                    var w1 = Vector256.WidenUpper(w);
                    var y0 = Vector256.WidenLower(y);
                    var y1 = Vector256.WidenUpper(y);
                    var z0 = Vector256.WidenLower(z);
                    var z1 = Vector256.WidenUpper(z);
                    a0 += v0 * v0;
                    a1 += v1 * v1;
                    a2 += w0 * w0;
                    a3 += w1 * w1;
                    a4 += y0 * y0;
                    a5 += y1 * y1;
                    a6 += z0 * z0;
                    a7 += z1 * z1;
                }
                a0.StoreUnsafe(ref l, 0);
                a1.StoreUnsafe(ref l, 4);
                a2.StoreUnsafe(ref l, 8);
                a3.StoreUnsafe(ref l, 12);
                a4.StoreUnsafe(ref l, 16);
                a5.StoreUnsafe(ref l, 20);
                a6.StoreUnsafe(ref l, 24);
                a7.StoreUnsafe(ref l, 28);
            }
            else
                for (; i < n; i += Lanes)
                    for (int lane = 0; lane < Lanes; lane++)
                    {
                        double v = Unsafe.Add(ref x, i + lane);
                        lanes[lane] += v * v;
                    }
        }
    }
}
