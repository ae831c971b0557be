// A dataset held as bytes (IDX images) gives the floats of a float copy divided the same way: row by row, in its
// fingerprint, in what is sent to workers, and in the gradients computed on it, without ever making the float array;
// and once something asks for that array, every row comes from it.
using DistTrain.Core.Data;
using DistTrain.Core.Model;
using DistTrain.Protos;

namespace DistTrain.Tests.Data;

public class ByteDatasetTests
{
    private static (Dataset Bytes, Dataset Floats) Pair(int rows, int width, float divisor, int seed)
    {
        var random = new Random(seed);
        var values = new byte[rows * width];
        random.NextBytes(values);
        int[] labels = [.. Enumerable.Range(0, rows).Select(i => i % 3)];
        var bytes = Dataset.FromBytes(values, labels, width, 3, "data");
        var floats = new Dataset([.. values.Select(b => (float)b)], labels, width, 3, "data");
        Normalization.Scale(bytes, divisor);
        Normalization.Scale(floats, divisor);
        return (bytes, floats);
    }

    private static int[] Bits(ReadOnlySpan<float> values) => [.. values.ToArray().Select(BitConverter.SingleToInt32Bits)];

    [Theory]
    [InlineData(255f)]
    [InlineData(1f)]
    [InlineData(7.3f)]
    public void RowsFingerprintAndFloatsAreThoseOfTheFloatCopy(float divisor)
    {
        var (bytes, floats) = Pair(37, 29, divisor, 1);
        var row = new float[29];
        for (int r = 0; r < 37; r++)
        {
            bytes.CopyRow(r, row);
            Assert.Equal(Bits(floats.Row(r)), Bits(row));
        }
        Assert.Equal(Fingerprint.Compute(floats), Fingerprint.Compute(bytes));
        var sent = DatasetCodec.Decode(DatasetCodec.Encode(new DataSplit(bytes, null))).Train;
        Assert.True(sent.HoldsBytes);
        Assert.Equal(Fingerprint.Compute(floats), Fingerprint.Compute(sent));
        Assert.True(bytes.HoldsBytes); // none of the above made the float array
        Assert.Equal(Bits(floats.Features), Bits(sent.Features));

        Assert.Equal(Bits(floats.Features), Bits(bytes.Features));
        Assert.False(bytes.HoldsBytes);
    }

    [Fact]
    public void ASecondDivisionAndAChangeMadeThroughTheFloatsAreSeenByEveryRow()
    {
        var (bytes, floats) = Pair(11, 8, 255f, 2);
        Normalization.Scale(bytes, 3f);
        Normalization.Scale(floats, 3f);
        Assert.Equal(Bits(floats.Features), Bits(bytes.Features));

        var (held, _) = Pair(11, 8, 255f, 2);
        held.Features[3 * 8 + 5] = 42f; // made now, then changed in place (as standardisation does)
        var row = new float[8];
        held.CopyRow(3, row);
        Assert.Equal(42f, row[5]);
    }

    [Fact]
    public void AnotherClassCountKeepsTheBytesAndTheirDivisor()
    {
        var (bytes, floats) = Pair(9, 5, 255f, 3);
        var wider = bytes.WithClasses(7);
        Assert.True(wider.HoldsBytes);
        Assert.Equal(7, wider.Classes);
        Assert.Equal(Bits(floats.Features), Bits(wider.Features));
        Assert.True(bytes.HoldsBytes);
    }

    [Fact]
    public void GradientsOnBytesAreTheGradientsOnFloatsAndTheBytesStay()
    {
        var spec = DistTrain.Tests.Core.GradientCheckTests.Spec("relu", "softmax_cross_entropy", inputs: 29, hidden: 13, outputs: 3);
        var network = new Network(spec);
        float[] parameters = network.CreateParameters(4);
        var (bytes, floats) = Pair(200, 29, 255f, 4);
        int[] indices = [.. new Random(6).GetItems(Enumerable.Range(0, 200).ToArray(), 77)];
        var fromFloats = new float[network.ParameterCount];
        var fromBytes = new float[network.ParameterCount];
        // Separate workspaces: the bytes' pass must not find the float pass's batch left in a shared copy.
        double lossFloats = new NetworkWorkspace(network, 100).ComputeGradient(parameters, floats, indices, fromFloats, out int correctFloats);
        double lossBytes = new NetworkWorkspace(network, 100).ComputeGradient(parameters, bytes, indices, fromBytes, out int correctBytes);
        Assert.Equal(Bits(fromFloats), Bits(fromBytes));
        Assert.Equal((lossFloats, correctFloats), (lossBytes, correctBytes));
        Assert.True(bytes.HoldsBytes);
    }

    [Fact]
    public void ValuesThatDoNotFillTheRowsAreRefused()
    {
        Assert.Throws<ArgumentException>(() => Dataset.FromBytes(new byte[10], [0, 1, 2], 3, 3, "x"));
        Assert.Throws<ArgumentOutOfRangeException>(() => Dataset.FromBytes(new byte[3], [0, 1, 2], 0, 3, "x"));
    }
}
