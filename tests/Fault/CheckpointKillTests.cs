// A checkpoint is never torn: a run with a model large enough that each checkpoint takes a while to write is
// SIGKILLed at several seeded moments just after a write begins; every checkpoint file left behind must load, each
// --resume must succeed from the newest complete one, and the final weights must equal the uninterrupted run's.
using DistTrain.Coordinator.Cli;
using DistTrain.Core.Model;
using DistTrain.Core.Training;
using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Fault;

[Collection(FaultProcessCollection.Name)]
public sealed class CheckpointKillTests : IDisposable
{
    private const int KillPoints = 5;
    private readonly string _dir = FaultRuns.NewDirectory("disttrain-ckpt-kill-");

    [Fact]
    public void KillDuringCheckpointWritesNeverLeavesATornCheckpointAndResumeIsBitIdentical()
    {
        // 1.3 M parameters: weights plus Adam's two moments make each checkpoint about 16 MB.
        string config = FaultRuns.WriteConfig(_dir, samples: 640, epochs: 3, hidden: 1024, features: 256, batch: 64, shard: 16);
        var reference = FaultRuns.Reference(_dir, config);
        var network = new Network(ConfigLoader.Load(config).Model);
        string checkpoints = Path.Combine(_dir, "checkpoints"), save = Path.Combine(_dir, "resumed.safetensors");
        string[] args = ["train", "--config", config, "--threads", "2", "--save", save, "--checkpoint-dir", checkpoints,
            "--checkpoint-every", "2", "--resume", "--quiet"];
        var random = new Random(4242);
        int midWrite = 0;
        long lastStep = -1;

        for (int kill = 0; kill < KillPoints; kill++)
        {
            // Leftovers of the previous kill are not this run's writes (resuming removes them).
            var leftovers = Temporaries(checkpoints).ToHashSet();
            using var victim = CliProcess.Start("disttrain.dll", args);
            // Wait (bounded) for a write that this run started, then let it get a seeded distance into the file.
            var deadline = DateTime.UtcNow.AddSeconds(60);
            string? temporary;
            while ((temporary = Temporaries(checkpoints).FirstOrDefault(t => !leftovers.Contains(t))) is null)
            {
                Assert.False(victim.HasExited, $"the run ended before kill {kill}: {victim.Stderr}");
                Assert.True(DateTime.UtcNow < deadline, $"no checkpoint write began within 60 s: {victim.Stderr}");
                Thread.Sleep(1);
            }
            // The first kill follows the write's start at once, so at least one lands inside a write however fast the
            // disk; the others at seeded distances into it (or past it).
            int delay = random.Next(0, 25);
            if (kill > 0) Thread.Sleep(delay);
            victim.Kill();
            if (File.Exists(temporary)) midWrite++;

            // Whatever the moment, every checkpoint file is complete and the newest one is what --resume will use
            // (none yet when the very first write was cut: the next run starts over, which is still correct).
            var complete = Checkpoint.List(checkpoints);
            foreach (var (step, path) in complete) Assert.Equal(step, Checkpoint.Load(path, network).Step);
            long newest = complete.Count > 0 ? complete[0].Step : -1;
            Assert.True(newest >= lastStep, "a newer checkpoint vanished");
            lastStep = newest;
        }
        Assert.True(midWrite > 0, "no kill landed inside a checkpoint write");

        var (code, _, stderr) = CliProcess.Run(args, TimeSpan.FromSeconds(120));
        Assert.True(code == 0, stderr);
        Assert.Contains(lastStep >= 0 ? $"resuming from step {lastStep}" : "starting from scratch", stderr);
        Assert.Equal(reference, File.ReadAllBytes(save));
        Assert.Empty(Temporaries(checkpoints));
    }

    private static IEnumerable<string> Temporaries(string directory) =>
        Directory.Exists(directory) ? Directory.EnumerateFiles(directory, ".checkpoint-*.tmp") : [];

    public void Dispose() => FaultRuns.DeleteDirectory(_dir);
}
