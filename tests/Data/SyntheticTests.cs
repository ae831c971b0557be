// Generated datasets are a pure function of (arguments, seed), and the spiral follows the CS231n construction.
using DistTrain.Core.Data;

namespace DistTrain.Tests.Data;

public class SyntheticTests
{
    [Fact]
    public void SameSeedSameBytesDifferentSeedDifferent()
    {
        Assert.Equal(Fingerprint.Compute(Synthetic.Spirals(50, 3, 0.2, 7)), Fingerprint.Compute(Synthetic.Spirals(50, 3, 0.2, 7)));
        Assert.NotEqual(Fingerprint.Compute(Synthetic.Spirals(50, 3, 0.2, 7)), Fingerprint.Compute(Synthetic.Spirals(50, 3, 0.2, 8)));
        Assert.Equal(Synthetic.Blobs(101, 5, 4, 1.5, 3).Features, Synthetic.Blobs(101, 5, 4, 1.5, 3).Features);
        Assert.NotEqual(Synthetic.Blobs(101, 5, 4, 1.5, 3).Features, Synthetic.Blobs(101, 5, 4, 1.5, 4).Features);
    }

    [Fact]
    public void NoiselessSpiralMatchesFormula()
    {
        Dataset data = Synthetic.Spirals(11, 2, 0, 1);
        Assert.Equal((22, 2, 2), (data.Count, data.Width, data.Classes));
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < 11; i++)
            {
                double r = i / 10.0, t = 4 * k + 4 * r;
                Assert.Equal((float)(r * Math.Sin(t)), data.Row(k * 11 + i)[0]);
                Assert.Equal((float)(r * Math.Cos(t)), data.Row(k * 11 + i)[1]);
                Assert.Equal(k, data.Labels[k * 11 + i]);
            }
    }

    [Fact]
    public void BlobsSpreadSamplesOverClasses()
    {
        Dataset data = Synthetic.Blobs(10, 3, 4, 0.5, 1);
        Assert.Equal([0, 0, 0, 1, 1, 1, 2, 2, 3, 3], data.Labels);
        Assert.Equal(30, data.Features.Length);
    }
}
