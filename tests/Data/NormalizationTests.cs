// Scaling and standardisation against a naive float64 reference, on awkward widths and with constant features.
using DistTrain.Core.Data;

namespace DistTrain.Tests.Data;

public class NormalizationTests
{
    [Fact]
    public void ScaleDividesExactly()
    {
        var data = new Dataset([0f, 255f, 51f, 1f], [0, 1], 2, 2, "t");
        Normalization.Scale(data, 255f);
        Assert.Equal([0f, 1f, 51f / 255f, 1f / 255f], data.Features);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(7, 9)]
    [InlineData(33, 17)]
    public void StandardizeMatchesNaiveFloat64(int rows, int width)
    {
        var rng = new DeterministicRandom(5);
        float[] values = [.. Enumerable.Range(0, rows * width).Select(i => (float)(3 + 10 * rng.NextGaussian()))];
        for (int r = 0; r < rows; r++) values[r * width] = 0.1f; // a constant column
        var train = new Dataset((float[])values.Clone(), new int[rows], width, 1, "train");
        var test = new Dataset((float[])values.Clone(), new int[rows], width, 1, "test");

        FeatureStatistics stats = Normalization.Standardize(train, test);

        for (int j = 0; j < width; j++)
        {
            double mean = 0, sq = 0;
            for (int r = 0; r < rows; r++) mean += values[r * width + j];
            mean /= rows;
            for (int r = 0; r < rows; r++) sq += Math.Pow(values[r * width + j] - mean, 2);
            double std = Math.Sqrt(sq / rows);
            Assert.Equal(mean, stats.Mean[j], 1e-9 * Math.Max(1, Math.Abs(mean)));
            if (j == 0 || rows == 1) Assert.Equal(0, stats.StdDev[j]);
            else Assert.Equal(std, stats.StdDev[j], 1e-9 * std);
            for (int r = 0; r < rows; r++)
            {
                double expected = stats.StdDev[j] == 0 ? values[r * width + j] - mean : (values[r * width + j] - mean) / std;
                Assert.Equal(expected, train.Features[r * width + j], 1e-5);
                Assert.Equal(train.Features[r * width + j], test.Features[r * width + j]);
            }
        }
    }

    [Fact]
    public void TestSetUsesTrainStatistics()
    {
        var train = new Dataset([0f, 2f], [0, 0], 1, 1, "train");
        var test = new Dataset([4f], [0], 1, 1, "test");
        FeatureStatistics stats = Normalization.Standardize(train, test);
        Assert.Equal([1.0], stats.Mean);
        Assert.Equal([1.0], stats.StdDev);
        Assert.Equal([3f], test.Features);
    }
}
