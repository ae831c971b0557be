// Per-channel standardisation against a naive float64 reference, the config spellings of data.standardize, and the
// saved preprocessing: applied to raw data it reproduces what training saw, and it survives its JSON form.
using DistTrain.Core;
using DistTrain.Core.Data;
using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Data;

public class PreprocessingTests
{
    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(7, 3, 5)]
    [InlineData(13, 2, 9)]
    public void ChannelStatisticsMatchNaiveFloat64(int rows, int channels, int plane)
    {
        var rng = new DeterministicRandom(11);
        int width = channels * plane;
        float[] values = [.. Enumerable.Range(0, rows * width).Select(i => (float)(i % width / plane * 5 + 2 * rng.NextGaussian()))];
        var train = new Dataset(values, new int[rows], width, 1, "train");

        FeatureStatistics stats = Normalization.ComputeChannelStatistics(train, channels);

        Assert.Equal(channels, stats.Mean.Length);
        for (int c = 0; c < channels; c++)
        {
            var pixels = Enumerable.Range(0, rows).SelectMany(r => Enumerable.Range(c * plane, plane).Select(j => (double)values[r * width + j])).ToArray();
            double mean = pixels.Average();
            double std = Math.Sqrt(pixels.Select(v => (v - mean) * (v - mean)).Average());
            Assert.Equal(mean, stats.Mean[c], 1e-9 * Math.Max(1, Math.Abs(mean)));
            if (pixels.Length == 1) Assert.Equal(0, stats.StdDev[c]);
            else Assert.Equal(std, stats.StdDev[c], 1e-9 * std);
        }
    }

    [Fact]
    public void PerChannelLoadStandardisesEachPlaneWithTrainingStatistics()
    {
        using var dir = new TempDirectory();
        // Two channels of two pixels: channel 0 holds 0/255 and 102/255, channel 1 holds 51/255 twice per row.
        string x = dir.Write("X.csv", "0,102,51,51\n102,0,51,51\n"), y = dir.Write("y.csv", "0\n1\n");
        string xt = dir.Write("Xt.csv", "204,0,102,51\n"), yt = dir.Write("yt.csv", "1\n");
        var spec = new DataSpec { Format = "csv", Path = x, LabelsPath = y, TestPath = xt, TestLabelsPath = yt, Standardize = "per-channel", Channels = 2 };

        DataSplit split = DataLoader.Load(spec, out Preprocessing pre);

        Assert.Equal(StandardizeMode.PerChannel, pre.Mode);
        Assert.Equal(0.2, pre.Mean[0], 1e-7);
        Assert.Equal(0.2, pre.StdDev[0], 1e-7);
        Assert.Equal(0.2, pre.Mean[1], 1e-7);
        Assert.Equal(0, pre.StdDev[1]); // a constant channel is centred, not divided
        Assert.Equal([-1f, 1f, 0f, 0f], split.Train.Row(0).ToArray().Select(v => MathF.Round(v, 5)));
        Assert.Equal([3f, -1f, 0.2f, 0f], split.Test!.Row(0).ToArray().Select(v => MathF.Round(v, 5)));
    }

    [Theory]
    [InlineData(null, StandardizeMode.None)]
    [InlineData("false", StandardizeMode.None)]
    [InlineData("none", StandardizeMode.None)]
    [InlineData("True", StandardizeMode.PerFeature)]
    [InlineData("per-feature", StandardizeMode.PerFeature)]
    [InlineData("Per-Channel", StandardizeMode.PerChannel)]
    public void StandardizeSpellings(string? value, StandardizeMode expected) =>
        Assert.Equal(expected, new DataSpec { Standardize = value }.StandardizeMode);

    [Fact]
    public void UnknownStandardizeAndBadChannelsAreOneLineErrors()
    {
        var e = Assert.Throws<UserInputException>(() => DataLoader.Load(new DataSpec { Format = "blobs", Standardize = "per-pixel" }));
        Assert.Equal("data.standardize is 'per-pixel', expected one of: none, per-feature, per-channel (true = per-feature)", e.Message);
        e = Assert.Throws<UserInputException>(() => DataLoader.Load(new DataSpec { Format = "blobs", Features = 5, Standardize = "per-channel", Channels = 2 }));
        Assert.Equal("data.channels is 2, but samples have 5 features, which do not split into 2 equal planes", e.Message);
    }

    [Theory]
    [InlineData("none")]
    [InlineData("per-feature")]
    [InlineData("per-channel")]
    public void AppliedToRawDataReproducesTraining(string mode)
    {
        var spec = new DataSpec { Format = "blobs", Samples = 90, Features = 6, Classes = 3, Scale = 3f, Standardize = mode, Channels = 3 };
        DataSplit trained = DataLoader.Load(spec, out Preprocessing pre);
        DataSplit raw = DataLoader.LoadRaw(spec, out _);

        Preprocessing restored = Preprocessing.FromJson(pre.ToJson(), "model.safetensors");
        Assert.Equal(pre, restored);
        restored.Apply(raw.Test!);

        Assert.Equal(trained.Test!.Features, raw.Test!.Features);
    }

    [Theory]
    [InlineData("{\"scale\":0,\"mode\":\"none\",\"mean\":[],\"stdDev\":[],\"channels\":1}")]
    [InlineData("{\"scale\":1,\"mode\":\"per-channel\",\"mean\":[0.5],\"stdDev\":[0.1],\"channels\":2}")]
    [InlineData("{\"scale\":1,\"mode\":\"per-feature\",\"mean\":[0.5],\"stdDev\":[-1],\"channels\":1}")]
    [InlineData("{\"scale\":1,\"mode\":\"sideways\"}")]
    [InlineData("not json")]
    public void InconsistentSavedPreprocessingIsRefused(string json)
    {
        var e = Assert.Throws<UserInputException>(() => Preprocessing.FromJson(json, "w.safetensors"));
        Assert.StartsWith("w.safetensors: metadata 'disttrain_preprocessing'", e.Message);
    }
}
