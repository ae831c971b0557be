// DataSpec → DataSplit: format dispatch, config errors naming the data.* key, scaling and the synthetic hold-out.
using DistTrain.Core;
using DistTrain.Core.Data;

using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Data;

public class DataLoaderTests
{
    [Fact]
    public void UnknownFormatListsValidValues()
    {
        var e = Assert.Throws<UserInputException>(() => DataLoader.Load(new DataSpec { Format = "parquet" }));
        Assert.Equal("data.format is 'parquet', expected one of: idx, csv, spirals, blobs", e.Message);
    }

    [Fact]
    public void IdxIsScaledBy255ByDefault()
    {
        using var dir = new TempDirectory();
        var (pixels, _) = IdxFiles.WriteMnistLayout(dir.Path, 6, 4, gzip: true);
        DataSplit split = DataLoader.Load(new DataSpec { Path = dir.Path });
        Assert.Equal(pixels.Select(b => b / 255f), split.Train.Features);
        Assert.Equal(4, split.Test!.Count);
    }

    [Fact]
    public void IdxClassesBelowLabelsIsAnError()
    {
        using var dir = new TempDirectory();
        IdxFiles.WriteMnistLayout(dir.Path, 6, 4, gzip: false);
        var e = Assert.Throws<UserInputException>(() => DataLoader.Load(new DataSpec { Path = dir.Path, Classes = 3 }));
        Assert.Contains("label 3 of item 3 out of range 0..2 (data.classes = 3)", e.Message);
    }

    [Fact]
    public void SyntheticSplitsDeterministically()
    {
        var spec = new DataSpec { Format = "spirals", Samples = 300, Classes = 3, Seed = 4 };
        DataSplit a = DataLoader.Load(spec), b = DataLoader.Load(spec);
        Assert.Equal((240, 60), (a.Train.Count, a.Test!.Count));
        Assert.Equal(Fingerprint.Compute(a), Fingerprint.Compute(b));
        Assert.NotEqual(Fingerprint.Compute(a), Fingerprint.Compute(DataLoader.Load(new DataSpec { Format = "spirals", Samples = 300, Seed = 5 })));
        // Rows are shuffled before the hold-out, so the test set sees every class.
        Assert.Equal(3, a.Test.Labels.Distinct().Count());

        DataSplit blobs = DataLoader.Load(new DataSpec { Format = "blobs", Samples = 100, Features = 5, Classes = 4, Standardize = "true" }, out var stats);
        Assert.Equal((80, 5, 4), (blobs.Train.Count, blobs.Train.Width, blobs.Train.Classes));
        Assert.Equal(StandardizeMode.PerFeature, stats.Mode);
        Assert.Equal(5, stats.Mean.Length);
    }

    [Theory]
    [InlineData("spirals", -1, "data.samples is -1, expected a positive integer")]
    [InlineData("blobs", 0, "data.samples is 0, expected a positive integer")]
    public void BadSyntheticSettingsNameTheKey(string format, int samples, string message)
    {
        var e = Assert.Throws<UserInputException>(() => DataLoader.Load(new DataSpec { Format = format, Samples = samples }));
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void CsvBothLayoutsWithTestFiles()
    {
        using var dir = new TempDirectory();
        string x = dir.Write("X_train.csv", "0,255\n51,102\n"), y = dir.Write("y_train.csv", "0\n1\n");
        string xt = dir.Write("X_test.csv", "255,0\n"), yt = dir.Write("y_test.csv", "4\n");
        DataSplit split = DataLoader.Load(new DataSpec { Format = "csv", Path = x, LabelsPath = y, TestPath = xt, TestLabelsPath = yt });
        Assert.Equal([0f, 1f, 0.2f, 0.4f], split.Train.Features);
        Assert.Equal(5, split.Train.Classes);
        Assert.Equal(5, split.Test!.Classes);

        var missing = Assert.Throws<UserInputException>(() =>
            DataLoader.Load(new DataSpec { Format = "csv", Path = x, LabelsPath = y, TestPath = xt }));
        Assert.StartsWith("data.testLabelsPath is not set", missing.Message);

        string combined = dir.Write("train.csv", "label,a,b\n1,2,4\n");
        string wide = dir.Write("test.csv", "label,a,b,c\n1,2,4,5\n");
        var width = Assert.Throws<UserInputException>(() =>
            DataLoader.Load(new DataSpec { Format = "csv", Path = combined, TestPath = wide, Scale = 1 }));
        Assert.Equal($"{wide}: 3 feature columns, but the training file {combined} has 2", width.Message);
    }
}
