// `train --save`, `evaluate`, `predict` and `export` as a user runs them, on the shipped examples: the saved model
// carries its preprocessing, so predict on raw pixels and the ONNX model on raw pixels agree with evaluate.
using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using DistTrain.Core.Data;
using DistTrain.Core.Model;
using DistTrain.Core.Training;
using DistTrain.Tests.Data;
using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Export;

public sealed partial class ModelCommandsTests
{
    private static readonly string Examples = Path.Combine(Distributed.ProcessHarness.RepoRoot, "examples");
    private static readonly string TestImages = Path.Combine(DataSpec.DefaultIdxDirectory, MnistLayout.TestImages + ".gz");

    [FashionMnistFact]
    public void FashionExampleStandardisedPerChannelReaches88PercentAndEveryCommandAgrees()
    {
        using var dir = new TempDirectory();
        string config = Path.Combine(Examples, "fashion-mnist.json");
        string weights = Train(dir, config);
        var metrics = File.ReadAllLines(Path.Combine(dir.Path, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(10, metrics.Count);
        Assert.True((double)metrics[^1]["test_accuracy"]! >= 0.88, $"test accuracy after 10 epochs: {metrics[^1]["test_accuracy"]}");
        Assert.Contains("\"mode\":\"per-channel\"", SafeTensorsFile.Read(weights).Metadata[Preprocessing.MetadataKey]);

        CheckCommandsAgree(dir, config, weights);
    }

    [FashionMnistFact]
    public void LectureExampleCommandsAgree()
    {
        using var dir = new TempDirectory();
        string config = Path.Combine(Examples, "lecture-mnist.json");
        CheckCommandsAgree(dir, config, Train(dir, config, "--epochs", "3"));
    }

    [Fact]
    public void PredictReadsCsvWithAndWithoutTheLabelColumn()
    {
        using var dir = new TempDirectory();
        string config = Path.Combine(Examples, "spirals.json");
        string weights = Train(dir, config, "--epochs", "3");
        double evaluated = Evaluate(config, weights);
        var spec = new DataSpec { Format = "spirals", Samples = 3000, Classes = 3, Noise = 0.2, Seed = 7, Scale = 1 };
        Dataset test = DataLoader.LoadRaw(spec, out _).Test!;
        var rows = Enumerable.Range(0, test.Count).Select(i => string.Join(',', test.Row(i).ToArray().Select(v => v.ToString("R", CultureInfo.InvariantCulture)))).ToList();
        string labelled = dir.Write("labelled.csv", "x0,x1,label\n" + string.Join('\n', rows.Select((r, i) => $"{r},{test.Labels[i]}")) + "\n");
        string unlabelled = dir.Write("unlabelled.csv", string.Join('\n', rows) + "\n");

        var (code, stdout, stderr) = CliProcess.Run(["predict", "--model", weights, "--config", config, "--input", labelled]);
        Assert.True(code == 0, stderr);
        Assert.Equal(evaluated, Accuracy(stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries), test.Count), 10);
        Assert.Contains("against column 'label'", stderr);

        (code, stdout, stderr) = CliProcess.Run(["predict", "--model", weights, "--config", config, "--input", unlabelled]);
        Assert.True(code == 0, stderr);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("row,predicted,p0,p1,p2", lines[0]);
        Assert.Equal(test.Count + 1, lines.Length);
    }

    [Theory]
    [InlineData("predict", "--input", "missing.csv", "missing.csv: input file not found")]
    [InlineData("export", "--onnx", "{dir}/a-file/m.onnx", "a-file/m.onnx: cannot create its directory")]
    [InlineData("predict", "--output", "{dir}/a-file/p.csv", "a-file/p.csv: cannot write the predictions")]
    public void BadPathsAreOneLine(string command, string flag, string value, string expected)
    {
        using var dir = new TempDirectory();
        string config = Path.Combine(Examples, "spirals.json");
        string weights = Train(dir, config, "--epochs", "1");
        dir.Write("a-file", "a file, not a directory");
        string[] input = command == "predict" && flag != "--input" ? ["--input", dir.Write("x.csv", "0.5,0.5\n")] : [];
        var (code, _, stderr) = CliProcess.Run([command, "--model", weights, "--config", config, flag, value.Replace("{dir}", dir.Path), .. input]);
        Assert.Equal(2, code);
        Assert.StartsWith("error: ", stderr.Trim());
        Assert.Contains(expected, stderr);
        Assert.Single(stderr.Trim().Split('\n'));
    }

    private static string Train(TempDirectory dir, string config, params string[] extra)
    {
        string weights = Path.Combine(dir.Path, "model.safetensors");
        var (code, _, stderr) = CliProcess.Run(["train", "--config", config, "--save", weights, "--quiet", "--metrics-out",
            Path.Combine(dir.Path, "metrics.jsonl"), .. extra], TimeSpan.FromMinutes(4));
        Assert.True(code == 0, stderr);
        return weights;
    }

    private static double Evaluate(string config, string weights)
    {
        var (code, stdout, stderr) = CliProcess.Run(["evaluate", "--model", weights, "--config", config]);
        Assert.True(code == 0, stderr);
        return double.Parse(EvaluatedAccuracy().Match(stdout).Groups[1].Value, CultureInfo.InvariantCulture) / 100;
    }

    /// <summary>evaluate, predict on the raw test images, and the exported ONNX model on the raw test images.</summary>
    private static void CheckCommandsAgree(TempDirectory dir, string config, string weights)
    {
        double evaluated = Evaluate(config, weights);

        string predictions = Path.Combine(dir.Path, "predictions.csv");
        var (code, _, stderr) = CliProcess.Run(["predict", "--model", weights, "--config", config, "--input", TestImages, "--output", predictions]);
        Assert.True(code == 0, stderr);
        var lines = File.ReadAllLines(predictions);
        Assert.Equal(10_001, lines.Length);
        Assert.Equal("row,predicted,label," + string.Join(',', Enumerable.Range(0, 10).Select(k => $"p{k}")), lines[0]);
        Assert.Equal(Math.Round(evaluated, 4), Math.Round(Accuracy(lines, 10_000), 4));

        string onnx = Path.Combine(dir.Path, "model.onnx");
        (code, _, stderr) = CliProcess.Run(["export", "--model", weights, "--config", config, "--onnx", onnx]);
        Assert.True(code == 0, stderr);
        var network = new Network(Coordinator.Cli.ConfigLoader.Load(config, environment: new Dictionary<string, string>()).Model);
        float[] parameters = WeightsFile.Load(weights, network, out var preprocessing);
        var images = IdxReader.ReadImages(TestImages);
        int[] labels = IdxReader.ReadLabels(Path.Combine(DataSpec.DefaultIdxDirectory, MnistLayout.TestLabels + ".gz"));
        var test = new Dataset(images.Widened(), labels, 784, 10, "t10k");
        preprocessing!.Apply(test);
        using var predictor = new Predictor(network, threads: 2);
        var expected = predictor.Predict(parameters, test);
        using var run = new OnnxRun(File.ReadAllBytes(onnx));
        var (logits, probabilities) = run.Run(images.Widened(), images.Count);
        double maxDifference = probabilities.Select((p, i) => Math.Abs(p - expected.Probabilities[i])).Max();
        Assert.True(maxDifference <= 1e-5, $"max |probability difference| {maxDifference}");
        int correct = Enumerable.Range(0, labels.Length).Count(r => network.Loss.PredictedClass(logits.AsSpan(r * 10, 10)) == labels[r]);
        Assert.Equal(Math.Round(evaluated, 4), Math.Round((double)correct / labels.Length, 4));
    }

    /// <summary>The share of CSV rows (after the header) whose predicted column equals the label column.</summary>
    private static double Accuracy(IReadOnlyList<string> lines, int rows)
    {
        Assert.Equal(rows + 1, lines.Count);
        var header = lines[0].Split(',');
        int predicted = Array.IndexOf(header, "predicted"), label = Array.IndexOf(header, "label");
        int correct = lines.Skip(1).Select(l => l.Split(',')).Count(cells => cells[predicted] == cells[label]);
        return (double)correct / rows;
    }

    [GeneratedRegex(@"accuracy (\d+\.\d+)%")]
    private static partial Regex EvaluatedAccuracy();
}
