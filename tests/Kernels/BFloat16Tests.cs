// bfloat16 rounding and packing against a plain reference written from the definition (keep the upper 16 bits; add
// one when the dropped half is above a half-unit, or exactly a half-unit and the kept part is odd): random values of
// every magnitude, every length 0..300 (so the vector loops and their scalar tails both run), ties, NaN, ±∞, ±0,
// subnormals and the values that round up into ∞. CI reruns these with AVX-512, AVX2 and all intrinsics off.
using DistTrain.Core.Kernels;

namespace DistTrain.Tests.Kernels;

public class BFloat16Tests
{
    private static uint Reference(uint bits)
    {
        float value = BitConverter.UInt32BitsToSingle(bits);
        if (float.IsNaN(value)) return (bits | 0x00400000u) & 0xFFFF0000u;
        uint upper = bits >> 16, lower = bits & 0xFFFFu;
        if (lower > 0x8000u || (lower == 0x8000u && (upper & 1) == 1)) upper++;
        return upper << 16;
    }

    private static IEnumerable<uint> Specials()
    {
        yield return 0u;                        // +0
        yield return 0x80000000u;               // −0
        yield return 0x7F800000u;               // +∞
        yield return 0xFF800000u;               // −∞
        yield return 0x7FC00000u;               // quiet NaN
        yield return 0x7F800001u;               // signalling NaN whose payload is all in the dropped half
        yield return 0xFF800001u;
        yield return 0x7F7FFFFFu;               // largest float: rounds up into +∞
        yield return 0x7F7F7FFFu;               // just below the tie: stays finite
        yield return 0x7F7F8000u;               // tie, odd upper half → up into ∞
        yield return 0x00000001u;               // smallest subnormal
        yield return 0x00008000u;               // subnormal tie, even upper half → down to 0
        yield return 0x00018000u;               // subnormal tie, odd → up
        yield return 0x3F808000u;               // 1.0039 tie, even upper → stays
        yield return 0x3F818000u;               // tie, odd upper → up
        yield return 0x3F80FFFFu;               // carry into the exponent side
        yield return 0x3FFFFFFFu;               // carry into the exponent
    }

    private static float[] RandomValues(int n, int seed)
    {
        var random = new Random(seed);
        var values = new float[n];
        for (int i = 0; i < n; i++)
            values[i] = random.Next(4) switch
            {
                0 => BitConverter.UInt32BitsToSingle((uint)random.NextInt64(0, 1L << 32)), // any bit pattern, NaNs too
                1 => (float)(random.NextDouble() * 2 - 1),
                2 => BitConverter.UInt32BitsToSingle((uint)(random.Next(1 << 16) << 16) | 0x8000u), // exact ties
                _ => (float)((random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-40, 39))),
            };
        return values;
    }

    [Fact]
    public void RoundMatchesTheDefinitionOnSpecialValues()
    {
        foreach (uint bits in Specials())
        {
            Assert.Equal(Reference(bits), BFloat16.RoundBits(bits));
            var one = new[] { BitConverter.UInt32BitsToSingle(bits) };
            BFloat16.RoundInPlace(one);
            Assert.Equal(Reference(bits), BitConverter.SingleToUInt32Bits(one[0]));
        }
        Assert.Equal(float.PositiveInfinity, BFloat16.Round(float.MaxValue));
        Assert.True(float.IsNaN(BFloat16.Round(BitConverter.UInt32BitsToSingle(0x7F800001u))));
    }

    [Fact]
    public void RoundInPlaceEncodeAndDecodeMatchTheReferenceAtEveryLength()
    {
        for (int n = 0; n <= 300; n++)
        {
            var values = RandomValues(n, seed: n);
            var expected = values.Select(v => Reference(BitConverter.SingleToUInt32Bits(v))).ToArray();

            var rounded = (float[])values.Clone();
            BFloat16.RoundInPlace(rounded);
            Assert.Equal(expected, rounded.Select(BitConverter.SingleToUInt32Bits));

            // The copying form leaves its source alone.
            var copy = new float[n];
            var source = (float[])values.Clone();
            BFloat16.Round(source, copy);
            Assert.Equal(expected, copy.Select(BitConverter.SingleToUInt32Bits));
            Assert.Equal(values.Select(BitConverter.SingleToUInt32Bits), source.Select(BitConverter.SingleToUInt32Bits));

            // Packed with a guard value after the end: nothing beyond n is written.
            var packed = new ushort[n + 1];
            packed[n] = 0xABCD;
            BFloat16.Encode(values, packed);
            Assert.Equal(expected.Select(b => (ushort)(b >> 16)), packed.Take(n));
            Assert.Equal(0xABCD, packed[n]);

            var decoded = new float[n + 1];
            decoded[n] = -7f;
            BFloat16.Decode(packed.AsSpan(0, n), decoded);
            Assert.Equal(expected, decoded.Take(n).Select(BitConverter.SingleToUInt32Bits));
            Assert.Equal(-7f, decoded[n]);
        }
    }

    [Fact]
    public void RoundedValuesCrossTheWireUnchanged()
    {
        var values = RandomValues(1000, seed: 99);
        BFloat16.RoundInPlace(values);
        var packed = new ushort[values.Length];
        BFloat16.Encode(values, packed);
        var back = new float[values.Length];
        BFloat16.Decode(packed, back);
        Assert.Equal(values.Select(BitConverter.SingleToUInt32Bits), back.Select(BitConverter.SingleToUInt32Bits));
    }

    [Fact]
    public void ShortDestinationsAreRefused()
    {
        Assert.Throws<ArgumentException>(() => BFloat16.Encode(new float[5], new ushort[4]));
        Assert.Throws<ArgumentException>(() => BFloat16.Decode(new ushort[5], new float[4]));
        Assert.Throws<ArgumentException>(() => BFloat16.Round(new float[5], new float[4]));
        var buffer = new float[9];
        Assert.Throws<ArgumentException>(() => BFloat16.Round(buffer.AsSpan(0, 8), buffer.AsSpan(1, 8)));
    }
}
