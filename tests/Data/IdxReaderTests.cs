// IDX and MNIST-layout loading: exact round trips (plain and gzip) and one clear error per malformed-file case.
using DistTrain.Core;
using DistTrain.Core.Data;

using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Data;

public class IdxReaderTests
{
    [Theory]
    [InlineData(false, "images.idx")]
    [InlineData(true, "images.idx.gz")]
    [InlineData(true, "compressed-but-no-extension")]
    public void ImagesRoundTrip(bool gzip, string name)
    {
        using var dir = new TempDirectory();
        byte[] pixels = [.. Enumerable.Range(0, 7 * 5 * 3).Select(i => (byte)(i * 37))];
        byte[] file = IdxFiles.Images(pixels, 7, 5, 3);
        File.WriteAllBytes(dir.File(name), gzip ? IdxFiles.Gzip(file) : file);

        IdxImages images = IdxReader.ReadImages(dir.File(name));

        Assert.Equal((7, 5, 3), (images.Count, images.Rows, images.Columns));
        Assert.Equal(pixels, images.Bytes);
        Assert.Equal(pixels.Select(b => (float)b), images.Widened());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LabelsRoundTrip(bool gzip)
    {
        using var dir = new TempDirectory();
        byte[] labels = [0, 9, 3, 255, 1];
        File.WriteAllBytes(dir.File("l"), gzip ? IdxFiles.Gzip(IdxFiles.Labels(labels)) : IdxFiles.Labels(labels));
        Assert.Equal(labels.Select(b => (int)b), IdxReader.ReadLabels(dir.File("l")));
    }

    [Fact]
    public void WrongMagicNamesBothNumbers()
    {
        using var dir = new TempDirectory();
        File.WriteAllBytes(dir.File("train-images-idx3-ubyte"), IdxFiles.Labels([1, 2]));
        var e = Assert.Throws<UserInputException>(() => IdxReader.ReadImages(dir.File("train-images-idx3-ubyte")));
        Assert.Equal($"{dir.File("train-images-idx3-ubyte")}: wrong magic number 0x00000801, expected 0x00000803 (idx3 unsigned-byte images)", e.Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TruncatedBodySaysHowMuchWasExpected(bool gzip)
    {
        using var dir = new TempDirectory();
        byte[] file = IdxFiles.Images(new byte[100], 10, 28, 28);
        File.WriteAllBytes(dir.File("img"), gzip ? IdxFiles.Gzip(file) : file);
        var e = Assert.Throws<UserInputException>(() => IdxReader.ReadImages(dir.File("img")));
        Assert.Contains(dir.File("img"), e.Message);
        Assert.Contains("truncated: header says 10 images of 28×28 (7840 bytes) but only 100 bytes follow", e.Message);
    }

    [Fact]
    public void TruncatedHeaderAndExtraBytesAreErrors()
    {
        using var dir = new TempDirectory();
        File.WriteAllBytes(dir.File("short"), [0, 0, 8, 3, 0, 0]);
        Assert.Contains("truncated: header ends before dimension 1 of 3",
            Assert.Throws<UserInputException>(() => IdxReader.ReadImages(dir.File("short"))).Message);

        File.WriteAllBytes(dir.File("long"), [.. IdxFiles.Labels([1, 2]), 7]);
        Assert.Contains("(1 extra)", Assert.Throws<UserInputException>(() => IdxReader.ReadLabels(dir.File("long"))).Message);
    }

    [Fact]
    public void CorruptGzipIsAUserError()
    {
        using var dir = new TempDirectory();
        byte[] gz = IdxFiles.Gzip(IdxFiles.Labels(new byte[1000]));
        for (int i = 12; i < gz.Length - 8; i++) gz[i] ^= 0x5A;
        File.WriteAllBytes(dir.File("bad.gz"), gz);
        var e = Assert.Throws<UserInputException>(() => IdxReader.ReadLabels(dir.File("bad.gz")));
        Assert.Contains(dir.File("bad.gz"), e.Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void MnistLayoutLoadsBothSplits(bool gzip)
    {
        using var dir = new TempDirectory();
        var (pixels, labels) = IdxFiles.WriteMnistLayout(dir.Path, train: 23, test: 7, gzip);

        DataSplit split = MnistLayout.Load(dir.Path);

        Assert.Equal((23, 12, 10), (split.Train.Count, split.Train.Width, split.Train.Classes));
        Assert.Equal(pixels.Select(b => (float)b), split.Train.Features);
        Assert.Equal(labels.Select(b => (int)b), split.Train.Labels);
        Assert.NotNull(split.Test);
        Assert.Equal((7, 12, 10), (split.Test.Count, split.Test.Width, split.Test.Classes));
    }

    [Fact]
    public void MissingFileNamesExpectedFilesAndDirectory()
    {
        using var dir = new TempDirectory();
        IdxFiles.WriteMnistLayout(dir.Path, 5, 5, gzip: true);
        File.Delete(dir.File(MnistLayout.TrainLabels + ".gz"));
        var e = Assert.Throws<UserInputException>(() => MnistLayout.Load(dir.Path));
        Assert.Contains(dir.Path, e.Message);
        Assert.Contains("missing train-labels-idx1-ubyte or train-labels-idx1-ubyte.gz", e.Message);

        var missingDir = Assert.Throws<UserInputException>(() => MnistLayout.Load(dir.File("nope")));
        Assert.Contains(dir.File("nope"), missingDir.Message);
        Assert.Contains("train-images-idx3-ubyte[.gz]", missingDir.Message);
    }

    [Fact]
    public void HalfATestPairIsAnErrorButNoTestPairIsFine()
    {
        using var dir = new TempDirectory();
        IdxFiles.WriteMnistLayout(dir.Path, 5, 5, gzip: false);
        File.Delete(dir.File(MnistLayout.TestImages));
        Assert.Contains("missing t10k-images-idx3-ubyte",
            Assert.Throws<UserInputException>(() => MnistLayout.Load(dir.Path)).Message);
        File.Delete(dir.File(MnistLayout.TestLabels));
        Assert.Null(MnistLayout.Load(dir.Path).Test);
    }

    [Fact]
    public void ImageAndLabelCountMismatch()
    {
        using var dir = new TempDirectory();
        IdxFiles.WriteMnistLayout(dir.Path, 5, 5, gzip: false);
        File.WriteAllBytes(dir.File(MnistLayout.TrainLabels), IdxFiles.Labels([1, 2, 3]));
        var e = Assert.Throws<UserInputException>(() => MnistLayout.Load(dir.Path));
        Assert.Equal($"{dir.File(MnistLayout.TrainLabels)}: 3 labels, but {dir.File(MnistLayout.TrainImages)} has 5 images", e.Message);
    }
}
