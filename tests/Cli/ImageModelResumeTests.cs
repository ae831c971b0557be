// An image model with batch norm (running statistics in the checkpoint) and dropout (masks keyed by the step) resumed
// from a checkpoint in the middle of the run ends byte-identical to the run that did not stop.
using System.Text.Json.Nodes;
using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Cli;

public class ImageModelResumeTests
{
    [Fact]
    public void ResumingAnImageModelMidRunGivesByteIdenticalWeights()
    {
        using var dir = new TempDirectory();
        var config = ConfigFiles.Blobs(samples: 400, features: 48, classes: 3, epochs: 3, batch: 50, shard: 16);
        var model = config["model"]!.AsObject();
        model.Remove("inputs");
        model["input"] = new JsonArray(3, 4, 4);
        model["layers"] = new JsonArray(
            new JsonObject { ["type"] = "conv2d", ["channels"] = 4, ["kernel"] = 3, ["padding"] = 1 },
            new JsonObject { ["type"] = "batchnorm2d" },
            new JsonObject { ["type"] = "relu" },
            new JsonObject
            {
                ["type"] = "residual", ["layers"] = new JsonArray(
                    new JsonObject { ["type"] = "conv2d", ["channels"] = 6, ["kernel"] = 3, ["stride"] = 2, ["padding"] = 1 },
                    new JsonObject { ["type"] = "batchnorm2d" }),
            },
            new JsonObject { ["type"] = "flatten" },
            new JsonObject { ["type"] = "dropout", ["p"] = 0.3 },
            new JsonObject { ["type"] = "linear", ["units"] = 3 });
        string path = ConfigFiles.Write(dir.Path, config), checkpoints = dir.File("checkpoints");
        string straight = dir.File("straight.safetensors"), resumed = dir.File("resumed.safetensors");
        var (code, _, stderr) = CliProcess.Run(["train", "--config", path, "--save", straight, "--quiet", "--threads", "2",
            "--checkpoint-dir", checkpoints, "--checkpoint-every", "5"]);
        Assert.True(code == 0, stderr);

        // Keep only the oldest checkpoint past the first epoch's start: the run goes on from there.
        var kept = Directory.EnumerateFiles(checkpoints, "checkpoint-*.safetensors").OrderBy(StepOf).ToList();
        Assert.True(kept.Count >= 2, $"checkpoints: {string.Join(", ", kept)}");
        string from = kept[0];
        foreach (string later in Directory.EnumerateFiles(checkpoints).Where(f => !Path.GetFileName(from).StartsWith(Path.GetFileNameWithoutExtension(f), StringComparison.Ordinal)
            && StepOfAny(f) > StepOf(from)))
            File.Delete(later);
        Assert.True(StepOf(from) < 24, $"resuming from step {StepOf(from)}, the run has 24");

        (code, _, stderr) = CliProcess.Run(["train", "--config", path, "--save", resumed, "--quiet", "--threads", "1",
            "--checkpoint-dir", checkpoints, "--checkpoint-every", "5", "--resume"]);
        Assert.True(code == 0, stderr);
        Assert.Contains($"resuming from step {StepOf(from)}", stderr);
        Assert.Equal(File.ReadAllBytes(straight), File.ReadAllBytes(resumed));
    }

    private static long StepOf(string path) => long.Parse(Path.GetFileNameWithoutExtension(path)["checkpoint-".Length..]);

    /// <summary>The step in any checkpoint file's name ("checkpoint-00000010.safetensors", or its companion files).</summary>
    private static long StepOfAny(string path)
    {
        string name = Path.GetFileName(path);
        if (!name.StartsWith("checkpoint-", StringComparison.Ordinal)) return long.MaxValue;
        string digits = new(name["checkpoint-".Length..].TakeWhile(char.IsDigit).ToArray());
        return digits.Length == 0 ? long.MaxValue : long.Parse(digits);
    }
}
