// bfloat16 (the upper 16 bits of a float32) for the 16-bit wire: rounding to nearest, ties to even, and conversion to
// and from the packed 16-bit form. NaN stays NaN (quiet, sign kept); ±∞ stays ±∞; a finite value rounds to ±∞ only
// when it is beyond bfloat16's largest finite value, as IEEE rounding requires. Converting a rounded float to bf16
// and back is exact, so a vector rounded once can cross the wire without changing.
using System.Numerics;
using System.Runtime.InteropServices;

namespace DistTrain.Core.Kernels;

public static class BFloat16
{
    /// <summary><paramref name="bits"/> (a float32) rounded to bfloat16 (ties to even), as a float32 bit pattern.</summary>
    public static uint RoundBits(uint bits)
    {
        if ((bits & 0x7F800000u) == 0x7F800000u && (bits & 0x007FFFFFu) != 0)
            return (bits | 0x00400000u) & 0xFFFF0000u; // NaN: quiet, never rounded into ∞
        return (bits + 0x7FFFu + ((bits >> 16) & 1u)) & 0xFFFF0000u;
    }

    public static float Round(float value) => BitConverter.UInt32BitsToSingle(RoundBits(BitConverter.SingleToUInt32Bits(value)));

    /// <summary>Rounds every value to bfloat16 in place (its low 16 bits become zero).</summary>
    public static void RoundInPlace(Span<float> values)
    {
        var bits = MemoryMarshal.Cast<float, uint>(values);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var v = MemoryMarshal.Cast<uint, Vector<uint>>(bits);
            for (int k = 0; k < v.Length; k++) v[k] = RoundVector(v[k]);
            i = v.Length * Vector<uint>.Count;
        }
        for (; i < bits.Length; i++) bits[i] = RoundBits(bits[i]);
    }

    /// <summary>destination[i] = bfloat16 of source[i], rounded to nearest even.</summary>
    public static void Encode(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        if (destination.Length < source.Length)
            throw new ArgumentException($"destination holds {destination.Length} values, source has {source.Length}", nameof(destination));
        var bits = MemoryMarshal.Cast<float, uint>(source);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            int n = Vector<uint>.Count;
            for (; i <= bits.Length - 2 * n; i += 2 * n)
            {
                var low = RoundVector(new Vector<uint>(bits.Slice(i, n))) >> 16;
                var high = RoundVector(new Vector<uint>(bits.Slice(i + n, n))) >> 16;
                Vector.Narrow(low, high).CopyTo(destination.Slice(i, 2 * n));
            }
        }
        for (; i < bits.Length; i++) destination[i] = (ushort)(RoundBits(bits[i]) >> 16);
    }

    /// <summary>destination[i] = the float32 of bfloat16 source[i] (exact).</summary>
    public static void Decode(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        if (destination.Length < source.Length)
            throw new ArgumentException($"destination holds {destination.Length} values, source has {source.Length}", nameof(destination));
        var bits = MemoryMarshal.Cast<float, uint>(destination);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            int n = Vector<ushort>.Count;
            for (; i <= source.Length - n; i += n)
            {
                Vector.Widen(new Vector<ushort>(source.Slice(i, n)), out var low, out var high);
                (low << 16).CopyTo(bits.Slice(i, n / 2));
                (high << 16).CopyTo(bits.Slice(i + n / 2, n / 2));
            }
        }
        for (; i < source.Length; i++) bits[i] = (uint)source[i] << 16;
    }

    private static Vector<uint> RoundVector(Vector<uint> bits)
    {
        var exponent = new Vector<uint>(0x7F800000u);
        var isNaN = Vector.BitwiseAnd(Vector.Equals(bits & exponent, exponent),
            Vector.GreaterThan(bits & new Vector<uint>(0x007FFFFFu), Vector<uint>.Zero));
        var rounded = (bits + new Vector<uint>(0x7FFFu) + ((bits >> 16) & Vector<uint>.One)) & new Vector<uint>(0xFFFF0000u);
        var quiet = (bits | new Vector<uint>(0x00400000u)) & new Vector<uint>(0xFFFF0000u);
        return Vector.ConditionalSelect(isNaN, quiet, rounded);
    }
}
