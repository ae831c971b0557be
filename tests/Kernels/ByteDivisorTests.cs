// Widening bytes with a division gives IEEE division's floats for every byte value, at every length, offset and SIMD
// width (CI runs the kernel tests again under DOTNET_EnableAVX512=0, DOTNET_EnableAVX2=0 and DOTNET_EnableHWIntrinsic=0),
// whichever way the divisor divides.
using DistTrain.Core.Kernels;

namespace DistTrain.Tests.Kernels;

public class ByteDivisorTests
{
    // Pixels' 255, no division, small and large, and divisors whose reciprocal is inexact.
    public static TheoryData<float> Divisors => [255f, 1f, 2f, 3f, 7.3f, 0.1f, 1e-30f, 1e30f, 1f / 3, 254.99998f, 65535f];

    [Theory]
    [MemberData(nameof(Divisors))]
    public void WideningGivesIeeeDivisionAtEveryLengthAndOffset(float value)
    {
        var divisor = new ByteDivisor(value);
        byte[] all = [.. Enumerable.Range(0, 256).Select(b => (byte)b)];
        var random = new Random(5);
        random.Shuffle(all);
        for (int length = 0; length <= 70; length++)
            for (int offset = 0; offset < 16; offset++)
            {
                var source = all.AsSpan(offset + (length * 7) % (256 - 70 - 16), length);
                var destination = new float[length + 3];
                destination.AsSpan().Fill(-1f);
                ElementWise.Widen(source, divisor, destination);
                for (int i = 0; i < length; i++)
                {
                    float expected = source[i] / value;
                    Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(destination[i]),
                        $"{source[i]} / {value:R} at {i} of {length}: expected {expected:R}, got {destination[i]:R} (by reciprocal: {divisor.ByReciprocal})");
                }
                Assert.All(destination[length..], x => Assert.Equal(-1f, x)); // nothing written past the end
            }
        // Every byte value once, in a span long enough for every vector width.
        var everything = new float[256];
        ElementWise.Widen(Enumerable.Range(0, 256).Select(b => (byte)b).ToArray(), divisor, everything);
        for (int b = 0; b < 256; b++) Assert.Equal(BitConverter.SingleToInt32Bits(b / value), BitConverter.SingleToInt32Bits(everything[b]));
    }

    [Fact]
    public void PixelsAreDividedByTheCorrectedReciprocal()
    {
        // The cheap way holds for the divisor every image dataset uses; the check behind it is the test above.
        Assert.True(new ByteDivisor(255f).ByReciprocal);
        Assert.True(ByteDivisor.One.ByReciprocal);
    }

    [Fact]
    public void ADivisorThatIsNotAPositiveNumberIsRefused()
    {
        foreach (float bad in new[] { 0f, -1f, float.NaN, float.PositiveInfinity })
            Assert.Throws<ArgumentOutOfRangeException>(() => new ByteDivisor(bad));
        Assert.Throws<ArgumentException>(() => ElementWise.Widen(new byte[5], ByteDivisor.One, new float[4]));
    }
}
