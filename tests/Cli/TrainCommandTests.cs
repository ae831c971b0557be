using System.Text.Json.Nodes;
using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Cli;

// Bad input at the command line: one line on stderr naming the field or file, what was expected and what was
// found, and a non-zero exit code, never a stack trace.
public class TrainCommandTests
{
    private static void AssertOneLineError(int code, string stderr, params string[] mustContain)
    {
        Assert.NotEqual(0, code);
        var errors = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(l => l.StartsWith("error", StringComparison.OrdinalIgnoreCase)).ToList();
        Assert.True(errors.Count == 1, $"expected one error line, got:\n{stderr}");
        foreach (var text in mustContain) Assert.True(errors[0].Contains(text, StringComparison.Ordinal), $"'{text}' not in: {errors[0]}");
        Assert.DoesNotContain("   at ", stderr);
    }

    public static IEnumerable<object[]> BadConfigs()
    {
        yield return ["unknown layer", (Action<JsonObject>)(c => c["model"]!["layers"]![1]!["type"] = "swish"), new[] { "model.layers[1].type", "swish" }];
        yield return ["unknown optimizer", (Action<JsonObject>)(c => c["optimizer"]!["type"] = "adamx"), new[] { "optimizer.type", "adamx" }];
        yield return ["negative learning rate", (Action<JsonObject>)(c => c["optimizer"]!["learningRate"] = -0.1), new[] { "optimizer.learningRate", "-0.1" }];
        yield return ["input width mismatch", (Action<JsonObject>)(c => c["model"]!["inputs"] = 11), new[] { "10 features", "model.inputs is 11" }];
        yield return ["unknown loss", (Action<JsonObject>)(c => c["model"]!["loss"] = "l1"), new[] { "model.loss", "l1" }];
        yield return ["zero batch", (Action<JsonObject>)(c => c["training"]!["batchSize"] = 0), new[] { "training.batchSize", "found 0" }];
        yield return ["not a number", (Action<JsonObject>)(c => c["training"]!["epochs"] = "many"), new[] { "training.epochs" }];
        yield return ["unknown key", (Action<JsonObject>)(c => c["training"]!["epocs"] = 3), new[] { "epocs" }];
    }

    [Theory]
    [MemberData(nameof(BadConfigs))]
    public void BadConfigIsOneClearLine(string name, Action<JsonObject> corrupt, string[] expected)
    {
        using var dir = new TempDirectory();
        var config = ConfigFiles.Blobs();
        corrupt(config);
        var (code, _, stderr) = CliProcess.Run(["train", "--config", ConfigFiles.Write(dir.Path, config)]);
        AssertOneLineError(code, stderr, expected);
        Assert.False(string.IsNullOrEmpty(name));
    }

    [Fact]
    public void NegativeLearningRateFlagIsRejected()
    {
        using var dir = new TempDirectory();
        var (code, _, stderr) = CliProcess.Run(["train", "--config", ConfigFiles.Write(dir.Path, ConfigFiles.Blobs()), "--lr", "-1"]);
        AssertOneLineError(code, stderr, "optimizer.learningRate", "-1");
    }

    [Fact]
    public void UnknownFlagAndMissingConfigAreRejected()
    {
        var (code, _, stderr) = CliProcess.Run(["train", "--config", "/nonexistent/config.json"]);
        AssertOneLineError(code, stderr, "/nonexistent/config.json", "not found");
        (code, _, stderr) = CliProcess.Run(["train", "--config", "x.json", "--epoch", "3"]);
        AssertOneLineError(code, stderr, "--epoch");
    }

    [Fact]
    public void BrokenJsonIsRejected()
    {
        using var dir = new TempDirectory();
        string path = dir.File("broken.json");
        File.WriteAllText(path, "{ \"model\": { \"inputs\": 10, ");
        var (code, _, stderr) = CliProcess.Run(["train", "--config", path]);
        AssertOneLineError(code, stderr, path);
    }
}
