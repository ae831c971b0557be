using System.Text.Json.Nodes;
using DistTrain.Core.Data;
using DistTrain.Tests.Data;
using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Cli;

// Bad data files through the real command: one error line that names the file and the problem, exit code ≠ 0.
public class DataInputTests
{
    private static JsonObject IdxConfig(string directory)
    {
        var config = ConfigFiles.Blobs(features: 12, classes: 10);
        config["data"] = new JsonObject { ["format"] = "idx", ["path"] = directory };
        return config;
    }

    private static string OnlyErrorLine(int code, string stderr)
    {
        Assert.NotEqual(0, code);
        Assert.DoesNotContain("   at ", stderr);
        var errors = stderr.Split('\n').Where(l => l.StartsWith("error:", StringComparison.Ordinal)).ToList();
        Assert.True(errors.Count == 1, stderr);
        return errors[0];
    }

    [Fact]
    public void ValidIdxDirectoryTrains()
    {
        using var dir = new TempDirectory();
        IdxFiles.WriteMnistLayout(dir.Path, train: 200, test: 50, gzip: true);
        var (code, stdout, stderr) = CliProcess.Run(["train", "--config", ConfigFiles.Write(dir.Path, IdxConfig(dir.Path)), "--epochs", "1"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("test_acc", stdout);
    }

    [Theory]
    [InlineData("missing")]
    [InlineData("truncated")]
    [InlineData("magic")]
    public void BrokenIdxFilesAreNamed(string damage)
    {
        using var dir = new TempDirectory();
        IdxFiles.WriteMnistLayout(dir.Path, train: 200, test: 50, gzip: false);
        string images = Path.Combine(dir.Path, MnistLayout.TrainImages);
        switch (damage)
        {
            case "missing": File.Delete(Path.Combine(dir.Path, MnistLayout.TrainLabels)); break;
            case "truncated": File.WriteAllBytes(images, File.ReadAllBytes(images)[..1000]); break;
            case "magic":
                var bytes = File.ReadAllBytes(images);
                bytes[3] = 0x02;
                File.WriteAllBytes(images, bytes);
                break;
        }
        var (code, _, stderr) = CliProcess.Run(["train", "--config", ConfigFiles.Write(dir.Path, IdxConfig(dir.Path))]);
        string line = OnlyErrorLine(code, stderr);
        Assert.Contains(damage == "missing" ? MnistLayout.TrainLabels : MnistLayout.TrainImages, line);
        Assert.Contains(damage switch { "missing" => "missing", "truncated" => "truncated", _ => "magic" }, line, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData("1,2,3,0\n4,abc,6,1\n", "line 3", "'abc' is not a number")]
    [InlineData("1,2,3,0\n4,5,1\n", "line 3", "expected 4 columns, found 3")]
    [InlineData("1,2,3,0\n4,5,6,12\n", "label 12", "0..3")]
    public void BrokenCsvIsNamed(string csv, string where, string what)
    {
        using var dir = new TempDirectory();
        string path = dir.Write("data.csv", "a,b,c,label\n" + csv);
        var config = ConfigFiles.Blobs(features: 3, classes: 4);
        config["data"] = new JsonObject { ["format"] = "csv", ["path"] = path, ["classes"] = 4 };
        var (code, _, stderr) = CliProcess.Run(["train", "--config", ConfigFiles.Write(dir.Path, config)]);
        string line = OnlyErrorLine(code, stderr);
        Assert.Contains("data.csv", line);
        Assert.Contains(where, line);
        Assert.Contains(what, line);
    }
}
