using System.Globalization;
using System.Text.RegularExpressions;
using DistTrain.Core.Api;
using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Api;

public class LibraryUsageExampleTests
{
    [Fact]
    public void ExampleTrainsSpiralsToAtLeast95PercentAndSavesALoadableModel()
    {
        using var dir = new TempDirectory();
        string weights = dir.File("spirals.safetensors");
        // The example project is referenced by this one, so its build sits next to the test assembly.
        using var example = CliProcess.Start("LibraryUsage.dll", [weights], workingDirectory: dir.Path);
        int code = example.WaitForExit(TimeSpan.FromMinutes(1));
        Assert.True(code == 0, $"exit {code}\n{example.Stdout}\n{example.Stderr}");

        var match = Regex.Match(example.Stdout, @"train accuracy (\d+\.\d+)%");
        Assert.True(match.Success, example.Stdout);
        double accuracy = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.True(accuracy >= 95, $"train accuracy {accuracy}%");
        Assert.Equal(3, Sequential.Load(weights).ToSpec().Layers.Count(l => l.Type == "linear"));
    }
}
