// The payload that carries a dataset to a worker (and into its cache): float32 sets and sets held as bytes come back
// with the same floats and fingerprint, bytes at a quarter of the size and still held as bytes; a payload of the
// first version (float32 only) is still read; a malformed one is an InvalidDataException, never a huge allocation.
using DistTrain.Core.Data;
using DistTrain.Protos;

namespace DistTrain.Tests.Data;

public class DatasetCodecTests
{
    private static DataSplit Images(int rows, int width, int seed)
    {
        var random = new Random(seed);
        Dataset Set(int count)
        {
            var values = new byte[count * width];
            random.NextBytes(values);
            var set = Dataset.FromBytes(values, [.. Enumerable.Range(0, count).Select(i => i % 10)], width, 10, "images");
            Normalization.Scale(set, 255f);
            return set;
        }
        return new DataSplit(Set(rows), Set(rows / 3));
    }

    [Fact]
    public void SetsHeldAsBytesTravelAsBytesWithTheirFloatsAndFingerprint()
    {
        var split = Images(300, 49, 1);
        byte[] payload = DatasetCodec.Encode(split);
        var decoded = DatasetCodec.Decode(payload);
        Assert.True(decoded.Train.HoldsBytes && decoded.Test!.HoldsBytes);
        Assert.Equal(Fingerprint.Compute(split), Fingerprint.Compute(decoded));
        Assert.Equal(split.Train.Labels, decoded.Train.Labels);
        Assert.Equal(split.Train.Features, decoded.Train.Features);
        // One byte a feature, not four.
        Assert.InRange(payload.Length, 400 * 49, 400 * 49 + 400 * 4 + 200);
    }

    [Fact]
    public void FloatSetsTravelAsFloats()
    {
        var split = new DataSplit(Synthetic.Blobs(50, 7, 3, 1, 2), null);
        var decoded = DatasetCodec.Decode(DatasetCodec.Encode(split));
        Assert.False(decoded.Train.HoldsBytes);
        Assert.Equal(split.Train.Features, decoded.Train.Features);
        Assert.Equal(Fingerprint.Compute(split), Fingerprint.Compute(decoded));
    }

    [Fact]
    public void APayloadOfTheFirstVersionIsStillRead()
    {
        var set = Synthetic.Blobs(20, 3, 2, 1, 4);
        var decoded = DatasetCodec.Decode(DatasetPayloads.FirstVersion(set));
        Assert.Equal(set.Features, decoded.Train.Features);
        Assert.Equal(Fingerprint.Compute(new DataSplit(set, null)), Fingerprint.Compute(decoded));
    }

    [Fact]
    public void AFeatureKindOrDivisorThatCannotBeAndTruncatedBytesAreRefused()
    {
        byte[] payload = DatasetCodec.Encode(new DataSplit(Images(30, 4, 3).Train, null));
        // magic, sets, count, width, classes, source length, "images", then the kind and the divisor.
        int kindAt = 4 * 6 + "images".Length, divisorAt = kindAt + 4;
        byte[] Changed(int at, byte[] value)
        {
            var copy = (byte[])payload.Clone();
            value.CopyTo(copy, at);
            return copy;
        }
        Assert.Contains("feature kind 7", Assert.Throws<InvalidDataException>(() => DatasetCodec.Decode(Changed(kindAt, BitConverter.GetBytes(7)))).Message);
        foreach (float bad in new[] { float.NaN, 0f, -255f, float.PositiveInfinity })
            Assert.Contains("divisor", Assert.Throws<InvalidDataException>(() => DatasetCodec.Decode(Changed(divisorAt, BitConverter.GetBytes(bad)))).Message);
        Assert.Throws<InvalidDataException>(() => DatasetCodec.Decode(payload.AsSpan(0, payload.Length - 1)));
        // Counts whose product wraps around: refused before any size is computed from them.
        byte[] huge = Changed(8, [.. BitConverter.GetBytes((1 << 30) + (1 << 15)), .. BitConverter.GetBytes(int.MaxValue - (1 << 15))]);
        Assert.Contains("more than an array holds", Assert.Throws<InvalidDataException>(() => DatasetCodec.Decode(huge)).Message);
        Assert.Throws<InvalidDataException>(() => DatasetCodec.Decode(payload.AsSpan(0, divisorAt + 10)));
    }
}
