using System.Text.Json;
using DistTrain.Core.Model;
using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Cli;

public class WeightsAndMetricsTests
{
    [Fact]
    public void MetricsSaveEvaluateAndInitWorkTogether()
    {
        using var dir = new TempDirectory();
        string config = ConfigFiles.Write(dir.Path, ConfigFiles.Blobs(epochs: 3));
        string weights = dir.File("w.safetensors"), metrics = dir.File("m.jsonl");
        var (code, stdout, stderr) = CliProcess.Run(["train", "--config", config, "--save", weights, "--metrics-out", metrics]);
        Assert.True(code == 0, stderr);
        Assert.Equal(3, stdout.Split('\n').Count(l => l.StartsWith("epoch ", StringComparison.Ordinal)));

        var rows = File.ReadAllLines(metrics).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal([1, 2, 3], rows.Select(r => r.GetProperty("epoch").GetInt32()));
        foreach (var key in new[] { "step", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "grad_norm", "samples_per_sec", "seconds" })
            Assert.True(rows.All(r => r.TryGetProperty(key, out _)), key);
        Assert.True(rows[2].GetProperty("train_loss").GetDouble() < rows[0].GetProperty("train_loss").GetDouble());
        Assert.Equal(3 * 32, rows[2].GetProperty("step").GetInt64()); // 1600 training samples / batch 50

        (code, stdout, stderr) = CliProcess.Run(["evaluate", "--model", weights, "--config", config]);
        Assert.True(code == 0, stderr);
        double reported = rows[2].GetProperty("test_accuracy").GetDouble() * 100;
        Assert.Contains($"accuracy {reported:F2}%", stdout);

        // --init continues from the saved weights: a 1-epoch run starting there beats one from scratch.
        string continued = dir.File("c.jsonl"), scratch = dir.File("s.jsonl");
        Assert.Equal(0, CliProcess.Run(["train", "--config", config, "--epochs", "1", "--init", weights, "--metrics-out", continued]).ExitCode);
        Assert.Equal(0, CliProcess.Run(["train", "--config", config, "--epochs", "1", "--metrics-out", scratch]).ExitCode);
        double Loss(string f) => JsonDocument.Parse(File.ReadAllLines(f)[0]).RootElement.GetProperty("train_loss").GetDouble();
        Assert.True(Loss(continued) < Loss(scratch), $"{Loss(continued)} vs {Loss(scratch)}");
    }
}
