// Fingerprints are stable for equal data and change with any single bit of features, labels or shape.
using DistTrain.Core.Data;

namespace DistTrain.Tests.Data;

public class FingerprintTests
{
    private static Dataset Sample() => Synthetic.Blobs(40, 3, 2, 1, 9);

    [Fact]
    public void SameDataSameHashRegardlessOfSource()
    {
        Dataset a = Sample(), b = Sample();
        var renamed = new Dataset(b.Features, b.Labels, b.Width, b.Classes, "elsewhere");
        Assert.Equal(Fingerprint.Compute(a), Fingerprint.Compute(renamed));
        Assert.Matches("^[0-9a-f]{64}$", Fingerprint.Compute(a));
    }

    [Fact]
    public void KnownValueIsPinned()
    {
        // Pins the canonical encoding: if this changes, every cached dataset's name changes with it.
        var data = new Dataset([1f, -0.5f], [1], 2, 3, "x");
        Assert.Equal(ExpectedKnown(), Fingerprint.Compute(data));
    }

    private static string ExpectedKnown()
    {
        byte[] bytes =
        [
            .. System.Text.Encoding.ASCII.GetBytes("DistTrain.Dataset.v1\0"),
            2, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0,
            0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xbf,
            1, 0, 0, 0,
        ];
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes));
    }

    [Fact]
    public void OneBitChangesTheHash()
    {
        string original = Fingerprint.Compute(Sample());
        Dataset feature = Sample();
        feature.Features[17] = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(feature.Features[17]) ^ 1);
        Assert.NotEqual(original, Fingerprint.Compute(feature));
        Dataset label = Sample();
        label.Labels[39] ^= 1;
        Assert.NotEqual(original, Fingerprint.Compute(label));
        Dataset reshaped = Sample();
        Assert.NotEqual(original, Fingerprint.Compute(reshaped.WithClasses(3)));
    }

    [Fact]
    public void SplitCoversBothSets()
    {
        Dataset train = Sample(), test = Synthetic.Blobs(10, 3, 2, 1, 1);
        string both = Fingerprint.Compute(new DataSplit(train, test));
        Assert.NotEqual(both, Fingerprint.Compute(new DataSplit(train, null)));
        test.Features[0] += 1;
        Assert.NotEqual(both, Fingerprint.Compute(new DataSplit(train, test)));
    }
}
