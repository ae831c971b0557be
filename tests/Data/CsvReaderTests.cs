// CSV loading in both layouts, with and without headers, and the one-line errors for each kind of bad cell.
using DistTrain.Core;
using DistTrain.Core.Data;

using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Data;

public class CsvReaderTests
{
    [Theory]
    [InlineData("")]
    [InlineData("a,b,c\n")]
    [InlineData("0,1,2\n")] // pandas' header for a DataFrame built from a bare array
    public void SeparateFilesWithOrWithoutHeader(string header)
    {
        using var dir = new TempDirectory();
        string x = dir.Write("X_train.csv", header + "1,2.5,-3\n4, 5e-1 ,6\r\n\n7,8,9\n");
        string y = dir.Write("y_train.csv", (header == "" ? "" : "label\n") + "2\n0\n1.0\n");

        Dataset data = CsvReader.ReadSeparate(x, y);

        Assert.Equal((3, 3, 3), (data.Count, data.Width, data.Classes));
        Assert.Equal([1f, 2.5f, -3f, 4f, 0.5f, 6f, 7f, 8f, 9f], data.Features);
        Assert.Equal([2, 0, 1], data.Labels);
    }

    [Fact]
    public void CombinedFileFindsNamedLabelColumn()
    {
        using var dir = new TempDirectory();
        string path = dir.Write("train.csv", "\uFEFFf1,\"label\",f2\n1,3,2\n4,0,5\n");
        Dataset data = CsvReader.ReadCombined(path, "label", classes: 10);
        Assert.Equal((2, 2, 10), (data.Count, data.Width, data.Classes));
        Assert.Equal([1f, 2f, 4f, 5f], data.Features);
        Assert.Equal([3, 0], data.Labels);
    }

    [Fact]
    public void CombinedFileWithoutHeaderUsesColumnIndex()
    {
        using var dir = new TempDirectory();
        string path = dir.Write("mnist.csv", "5,0,255\n0,128,1\n");
        Dataset data = CsvReader.ReadCombined(path, "0");
        Assert.Equal([5, 0], data.Labels);
        Assert.Equal([0f, 255f, 128f, 1f], data.Features);
        Assert.Equal(6, data.Classes);

        var e = Assert.Throws<UserInputException>(() => CsvReader.ReadCombined(path));
        Assert.Contains("has no header row, so data.labelColumn must be a 0-based column index, found 'label'", e.Message);
    }

    [Fact]
    public void UnknownLabelColumnListsHeader()
    {
        using var dir = new TempDirectory();
        string path = dir.Write("t.csv", "a,b\n1,2\n");
        var e = Assert.Throws<UserInputException>(() => CsvReader.ReadCombined(path, "target"));
        Assert.Equal($"{path} line 1: no column named 'target' (data.labelColumn) in the header [a, b]", e.Message);
    }

    [Fact]
    public void NonNumericCellNamesLineAndColumn()
    {
        using var dir = new TempDirectory();
        string x = dir.Write("data.csv", "a,b,c\n1,2,3\n4,5,abc\n");
        string y = dir.Write("y.csv", "0\n1\n");
        var e = Assert.Throws<UserInputException>(() => CsvReader.ReadSeparate(x, y));
        Assert.Equal($"{x} line 3: column 3 'abc' is not a number", e.Message);
    }

    [Fact]
    public void RaggedRowSaysExpectedAndFound()
    {
        using var dir = new TempDirectory();
        string path = dir.Write("r.csv", "label,a,b\n1,2,3\n1,2\n");
        var e = Assert.Throws<UserInputException>(() => CsvReader.ReadCombined(path));
        Assert.Equal($"{path} line 3: expected 3 columns, found 2", e.Message);
    }

    [Theory]
    [InlineData("12", 10, "label 12 out of range 0..9")]
    [InlineData("-1", null, "label -1 is negative")]
    [InlineData("1.5", null, "label '1.5' is not an integer")]
    [InlineData("cat", null, "label 'cat' is not an integer")]
    public void BadLabels(string label, int? classes, string problem)
    {
        using var dir = new TempDirectory();
        string x = dir.Write("X.csv", "1\n2\n3\n4\n5\n");
        string y = dir.Write("labels.csv", $"0\n1\n2\n3\n{label}\n");
        var e = Assert.Throws<UserInputException>(() => CsvReader.ReadSeparate(x, y, classes));
        Assert.StartsWith($"{y} line 5: ", e.Message);
        Assert.Contains(problem, e.Message);
    }

    [Fact]
    public void RowCountMismatchBetweenFeaturesAndLabels()
    {
        using var dir = new TempDirectory();
        string x = dir.Write("X.csv", "1,1\n2,2\n3,3\n");
        string y = dir.Write("y.csv", "0\n1\n");
        var e = Assert.Throws<UserInputException>(() => CsvReader.ReadSeparate(x, y));
        Assert.Equal($"{y}: 2 labels, but {x} has 3 data rows", e.Message);
    }

    [Fact]
    public void MissingAndEmptyFiles()
    {
        using var dir = new TempDirectory();
        var missing = Assert.Throws<UserInputException>(() => CsvReader.ReadCombined(dir.File("absent.csv")));
        Assert.StartsWith($"{dir.File("absent.csv")}: cannot open", missing.Message);
        string empty = dir.Write("empty.csv", "label,a\n\n");
        Assert.Equal($"{empty}: no data rows", Assert.Throws<UserInputException>(() => CsvReader.ReadCombined(empty)).Message);
    }

    [Fact]
    public void NonFiniteValuesAreRejected()
    {
        using var dir = new TempDirectory();
        string path = dir.Write("n.csv", "label,a\n0,1\n1,NaN\n");
        Assert.Contains("line 3: column 2 'NaN' is not a number",
            Assert.Throws<UserInputException>(() => CsvReader.ReadCombined(path)).Message);
    }
}
