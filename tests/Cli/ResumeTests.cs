using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Cli;

// A run killed with SIGKILL and restarted with --resume ends with weights byte-identical to an uninterrupted run.
public class ResumeTests
{
    [Fact]
    public void SigkillThenResumeGivesByteIdenticalWeights()
    {
        using var dir = new TempDirectory();
        // Enough steps (12 epochs × 96 batches) that the run is still going, with about a thousand steps left, when the
        // checkpoint past step 140 appears and the test (polling every 20 ms, maybe late on a busy machine) sees it.
        string config = ConfigFiles.Write(dir.Path, ConfigFiles.Blobs(samples: 6000, features: 40, classes: 5, epochs: 12, batch: 50, shard: 16));
        string reference = dir.File("reference.safetensors"), resumed = dir.File("resumed.safetensors");
        string checkpoints = dir.File("checkpoints");

        var (code, _, stderr) = CliProcess.Run(["train", "--config", config, "--save", reference, "--threads", "2"]);
        Assert.True(code == 0, stderr);

        string[] args = ["train", "--config", config, "--save", resumed, "--threads", "1", "--checkpoint-dir", checkpoints,
            "--checkpoint-every", "7", "--resume", "--metrics-out", dir.File("metrics.jsonl")];
        using (var victim = CliProcess.Start("disttrain.dll", args))
        {
            // Wait (bounded) until a mid-epoch checkpoint exists, then kill: the kill lands mid-run, not after it.
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (!Directory.Exists(checkpoints) ||
                   !Directory.EnumerateFiles(checkpoints, "checkpoint-*.safetensors").Any(f => StepOf(f) > 140))
            {
                Assert.False(victim.HasExited, $"the run ended before it could be killed: {victim.Stderr}");
                Assert.True(DateTime.UtcNow < deadline, "no checkpoint appeared within 60 s");
                Thread.Sleep(20);
            }
            Assert.False(victim.HasExited, "the run ended before it could be killed");
            victim.Kill();
        }
        Assert.False(File.Exists(resumed));

        (code, _, stderr) = CliProcess.Run(args);
        Assert.True(code == 0, stderr);
        Assert.Contains("resuming from step", stderr);
        Assert.Equal(File.ReadAllBytes(reference), File.ReadAllBytes(resumed));
        // The metrics file has every epoch once the resumed run is done (the interrupted epoch is reported once).
        var epochs = File.ReadAllLines(dir.File("metrics.jsonl")).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("epoch").GetInt32()).ToList();
        Assert.Equal(Enumerable.Range(1, 12), epochs.Distinct().Order());
    }

    private static long StepOf(string path) => long.Parse(Path.GetFileNameWithoutExtension(path)["checkpoint-".Length..]);
}
