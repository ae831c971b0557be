// bfloat16 (the upper 16 bits of a float32) for the 16-bit wire: rounding to nearest, ties to even, and conversion to
// and from the packed 16-bit form. NaN stays NaN (quiet, sign kept); ±∞ stays ±∞; a finite value rounds to ±∞ only
// when it is beyond bfloat16's largest finite value, as IEEE rounding requires. Converting a rounded float to bf16
// and back is exact, so a vector rounded once can cross the wire without changing.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

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
    public static void RoundInPlace(Span<float> values) => Round(values, values);

    /// <summary>destination[i] = source[i] rounded to bfloat16 (as float32); destination may be source itself.</summary>
    public static void Round(ReadOnlySpan<float> source, Span<float> destination)
    {
        if (destination.Length != source.Length)
            throw new ArgumentException($"destination holds {destination.Length} values, source has {source.Length}", nameof(destination));
        if (source.Overlaps(destination, out int offset) && offset != 0)
            throw new ArgumentException($"destination overlaps the source at an offset of {offset} values", nameof(destination));
        var bits = MemoryMarshal.Cast<float, uint>(source);
        var rounded = MemoryMarshal.Cast<float, uint>(destination);
        ref uint x = ref MemoryMarshal.GetReference(bits);
        ref uint y = ref MemoryMarshal.GetReference(rounded);
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i <= bits.Length - 16; i += 16)
                RoundVector(Vector512.LoadUnsafe(ref x, (nuint)i)).StoreUnsafe(ref y, (nuint)i);
        else if (Vector256.IsHardwareAccelerated)
            for (; i <= bits.Length - 8; i += 8)
                RoundVector(Vector256.LoadUnsafe(ref x, (nuint)i)).StoreUnsafe(ref y, (nuint)i);
        else if (Vector128.IsHardwareAccelerated)
            for (; i <= bits.Length - 4; i += 4)
                RoundVector(Vector128.LoadUnsafe(ref x, (nuint)i)).StoreUnsafe(ref y, (nuint)i);
        for (; i < bits.Length; i++) rounded[i] = RoundBits(bits[i]);
    }

    /// <summary>destination[i] = bfloat16 of source[i], rounded to nearest even.</summary>
    public static void Encode(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        if (destination.Length < source.Length)
            throw new ArgumentException($"destination holds {destination.Length} values, source has {source.Length}", nameof(destination));
        var bits = MemoryMarshal.Cast<float, uint>(source);
        ref uint x = ref MemoryMarshal.GetReference(bits);
        ref ushort y = ref MemoryMarshal.GetReference(destination);
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i <= bits.Length - 32; i += 32)
            {
                var low = RoundVector(Vector512.LoadUnsafe(ref x, (nuint)i)) >>> 16;
                var high = RoundVector(Vector512.LoadUnsafe(ref x, (nuint)(i + 16))) >>> 16;
                Vector512.Narrow(low, high).StoreUnsafe(ref y, (nuint)i);
            }
        else if (Vector256.IsHardwareAccelerated)
            for (; i <= bits.Length - 16; i += 16)
            {
                var low = RoundVector(Vector256.LoadUnsafe(ref x, (nuint)i)) >>> 16;
                var high = RoundVector(Vector256.LoadUnsafe(ref x, (nuint)(i + 8))) >>> 16;
                Vector256.Narrow(low, high).StoreUnsafe(ref y, (nuint)i);
            }
        else if (Vector128.IsHardwareAccelerated)
            for (; i <= bits.Length - 8; i += 8)
            {
                var low = RoundVector(Vector128.LoadUnsafe(ref x, (nuint)i)) >>> 16;
                var high = RoundVector(Vector128.LoadUnsafe(ref x, (nuint)(i + 4))) >>> 16;
                Vector128.Narrow(low, high).StoreUnsafe(ref y, (nuint)i);
            }
        for (; i < bits.Length; i++) destination[i] = (ushort)(RoundBits(bits[i]) >> 16);
    }

    /// <summary>destination[i] = the float32 of bfloat16 source[i] (exact).</summary>
    public static void Decode(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        if (destination.Length < source.Length)
            throw new ArgumentException($"destination holds {destination.Length} values, source has {source.Length}", nameof(destination));
        var bits = MemoryMarshal.Cast<float, uint>(destination);
        ref ushort x = ref MemoryMarshal.GetReference(source);
        ref uint y = ref MemoryMarshal.GetReference(bits);
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i <= source.Length - 32; i += 32)
            {
                var (low, high) = Vector512.Widen(Vector512.LoadUnsafe(ref x, (nuint)i));
                (low << 16).StoreUnsafe(ref y, (nuint)i);
                (high << 16).StoreUnsafe(ref y, (nuint)(i + 16));
            }
        else if (Vector256.IsHardwareAccelerated)
            for (; i <= source.Length - 16; i += 16)
            {
                var (low, high) = Vector256.Widen(Vector256.LoadUnsafe(ref x, (nuint)i));
                (low << 16).StoreUnsafe(ref y, (nuint)i);
                (high << 16).StoreUnsafe(ref y, (nuint)(i + 8));
            }
        else if (Vector128.IsHardwareAccelerated)
            for (; i <= source.Length - 8; i += 8)
            {
                var (low, high) = Vector128.Widen(Vector128.LoadUnsafe(ref x, (nuint)i));
                (low << 16).StoreUnsafe(ref y, (nuint)i);
                (high << 16).StoreUnsafe(ref y, (nuint)(i + 4));
            }
        for (; i < source.Length; i++) bits[i] = (uint)source[i] << 16;
    }

    // RoundBits on every lane: quiet NaN, else add 0x7FFF plus the lowest kept bit and truncate.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<uint> RoundVector(Vector512<uint> bits)
    {
        var exponent = Vector512.Create(0x7F800000u);
        var isNaN = Vector512.Equals(bits & exponent, exponent) & Vector512.GreaterThan(bits & Vector512.Create(0x007FFFFFu), Vector512<uint>.Zero);
        var rounded = (bits + Vector512.Create(0x7FFFu) + ((bits >>> 16) & Vector512<uint>.One)) & Vector512.Create(0xFFFF0000u);
        var quiet = (bits | Vector512.Create(0x00400000u)) & Vector512.Create(0xFFFF0000u);
        return Vector512.ConditionalSelect(isNaN, quiet, rounded);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<uint> RoundVector(Vector128<uint> bits)
    {
        var exponent = Vector128.Create(0x7F800000u);
        var isNaN = Vector128.Equals(bits & exponent, exponent) & Vector128.GreaterThan(bits & Vector128.Create(0x007FFFFFu), Vector128<uint>.Zero);
        var rounded = (bits + Vector128.Create(0x7FFFu) + ((bits >>> 16) & Vector128<uint>.One)) & Vector128.Create(0xFFFF0000u);
        var quiet = (bits | Vector128.Create(0x00400000u)) & Vector128.Create(0xFFFF0000u);
        return Vector128.ConditionalSelect(isNaN, quiet, rounded);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> RoundVector(Vector256<uint> bits)
    {
        var exponent = Vector256.Create(0x7F800000u);
        var isNaN = Vector256.Equals(bits & exponent, exponent) & Vector256.GreaterThan(bits & Vector256.Create(0x007FFFFFu), Vector256<uint>.Zero);
        var rounded = (bits + Vector256.Create(0x7FFFu) + ((bits >>> 16) & Vector256<uint>.One)) & Vector256.Create(0xFFFF0000u);
        var quiet = (bits | Vector256.Create(0x00400000u)) & Vector256.Create(0xFFFF0000u);
        return Vector256.ConditionalSelect(isNaN, quiet, rounded);
    }
}
