// Dividing byte values (pixels) by a fixed divisor exactly, at the cost of multiplications: q = a·r with r = 1/d,
// corrected once with the remainder a − q·d (exact by a fused multiply-add): q' = q + (a − q·d)·r. Only 256 values can
// be divided, so the correction is checked against IEEE division for every one of them when the divisor is made, and
// used only where it gives the same floats.
namespace DistTrain.Core.Kernels;

/// <summary>A divisor for byte values (immutable, so a dataset swaps it whole), with the cheapest exact way to divide by it (see <see cref="ElementWise.Widen(ReadOnlySpan{byte}, ByteDivisor, Span{float})"/>).</summary>
public sealed class ByteDivisor
{
    public ByteDivisor(float divisor)
    {
        if (!float.IsFinite(divisor) || divisor <= 0)
            throw new ArgumentOutOfRangeException(nameof(divisor), divisor, "must be a finite positive number");
        Value = divisor;
        Reciprocal = 1f / divisor;
        bool exact = true;
        for (int b = 0; b < 256 && exact; b++)
            exact = BitConverter.SingleToInt32Bits(Quotient(b, divisor, Reciprocal)) == BitConverter.SingleToInt32Bits(b / divisor);
        ByReciprocal = exact;
    }

    public float Value { get; }
    public float Reciprocal { get; }
    /// <summary>The corrected multiplication by the reciprocal gives IEEE division's float for every byte value.</summary>
    public bool ByReciprocal { get; }

    public static readonly ByteDivisor One = new(1f);

    /// <summary>a·r corrected once with the exact remainder (both steps fused multiply-adds).</summary>
    public static float Quotient(float a, float d, float r)
    {
        float q = a * r;
        return MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(-q, d, a), r, q);
    }
}
