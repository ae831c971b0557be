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
        var model = Sequential.Load(weights);
        Assert.Equal(3, model.ToSpec().Layers.Count(l => l.Type == "linear"));

        // The ONNX model it wrote gives the loaded model's outputs on the spirals test rows.
        var test = TrainingData.Spirals(samples: 3000, classes: 3, noise: 0.2, seed: 7).Test!;
        using var onnx = new Export.OnnxRun(File.ReadAllBytes(dir.File("spirals.onnx")));
        var (logits, _) = onnx.Run(test.Features, test.Count);
        float[] expected = model.Predict(test.Features);
        Assert.Equal(expected.Length, logits.Length);
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], logits[i], 1e-4f * (1 + Math.Abs(expected[i])));
    }
}
