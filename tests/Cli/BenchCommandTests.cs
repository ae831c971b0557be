// `disttrain bench` and the step-time summary both benchmarks print: the median and tail come from exactly the
// steps the samples/s figure counts, and the quantiles match a naive sorted reference.
using System.Globalization;
using System.Text.RegularExpressions;
using DistTrain.Coordinator.Reporting;
using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Cli;

public class BenchCommandTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(7)]
    [InlineData(100)]
    public void StepTimeQuantilesMatchASortedReference(int count)
    {
        var random = new Random(count);
        var values = Enumerable.Range(0, count).Select(_ => random.NextDouble() * 0.05).ToArray();
        var times = new StepTimes();
        foreach (double v in values) times.Add(v);
        var sorted = values.Order().ToArray();
        double median = count % 2 == 1 ? sorted[count / 2] : (sorted[count / 2 - 1] + sorted[count / 2]) / 2;
        Assert.Equal(median, times.Median, 12);
        Assert.Equal(values.Average(), times.Mean, 12);
        Assert.Equal(sorted[0], times.Quantile(0));
        Assert.Equal(sorted[^1], times.Quantile(1));
        // The 90th percentile lies between the values of its two neighbouring ranks.
        double rank = 0.9 * (count - 1);
        Assert.InRange(times.Quantile(0.9), sorted[(int)Math.Floor(rank)], sorted[(int)Math.Ceiling(rank)]);
        Assert.Contains($"({count} steps)", times.Describe());
    }

    [Fact]
    public void NoStepsIsSaidSoAndQuantilesOutsideZeroToOneAreRefused()
    {
        var times = new StepTimes();
        Assert.True(double.IsNaN(times.Median));
        Assert.Equal("step time: no steps measured", times.Describe());
        Assert.Throws<ArgumentOutOfRangeException>(() => times.Quantile(1.5));
    }

    [Fact]
    public void BenchPrintsTheStepTimesOfTheStepsItCounts()
    {
        using var dir = new TempDirectory();
        string config = ConfigFiles.Write(dir.Path, ConfigFiles.Blobs());
        // Epochs 2..3 are measured: two epochs of the training split in batches of 50.
        var parsed = System.Text.Json.JsonSerializer.Deserialize<DistTrain.Core.Training.TrainingConfig>(File.ReadAllText(config),
            DistTrain.Core.Training.TrainingConfig.Json)!;
        int train = DistTrain.Core.Data.DataLoader.Load(parsed.Data).Train.Count;
        var (code, stdout, stderr) = CliProcess.Run(["bench", "--skip-gemm", "--skip-conv", "--config", config, "--epochs", "3", "--threads", "1"]);
        Assert.True(code == 0, stderr);
        Assert.Matches(@"threads=1: [\d,]+ samples/s over epochs 2\.\.3", stdout);
        var line = Regex.Match(stdout, @"step time: median ([\d.]+) ms, mean ([\d.]+) ms, 90th percentile ([\d.]+) ms, max ([\d.]+) ms \((\d+) steps\)");
        Assert.True(line.Success, stdout);
        double Value(int group) => double.Parse(line.Groups[group].Value, CultureInfo.InvariantCulture);
        Assert.Equal(2 * ((train + 49) / 50), (int)Value(5));
        Assert.True(Value(1) >= 0 && Value(1) <= Value(3) && Value(3) <= Value(4) && Value(2) <= Value(4), line.Value);
    }
}
