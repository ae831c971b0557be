// Shared pieces of the fault tests: small configs whose steps are long enough to hit mid-step, the fault-free
// reference (local mode, which the distributed tests prove byte-identical to any worker count), and the step-log check.
using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Fault;

/// <summary>The real-process fault tests share the two cores; one at a time keeps their timing meaningful.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class FaultProcessCollection
{
    public const string Name = "fault processes";
}

public static class FaultRuns
{
    /// <summary>A tanh MLP on blobs; <paramref name="hidden"/> sets the cost of a step.</summary>
    public static string WriteConfig(string directory, int samples, int epochs, int hidden = 128, int features = 32,
        int batch = 64, int shard = 8, string name = "config.json")
    {
        string path = Path.Combine(directory, name);
        File.WriteAllText(path, $$"""
            {
              "model": { "inputs": {{features}}, "layers": [ { "type": "linear", "units": {{hidden}} }, { "type": "tanh" },
                         { "type": "linear", "units": {{hidden}} }, { "type": "tanh" }, { "type": "linear", "units": 4 } ],
                         "loss": "softmax_cross_entropy" },
              "data": { "format": "blobs", "samples": {{samples}}, "classes": 4, "features": {{features}}, "noise": 0.5, "seed": 7, "scale": 1, "testFraction": 0 },
              "optimizer": { "type": "adam", "learningRate": 0.005 },
              "training": { "epochs": {{epochs}}, "batchSize": {{batch}}, "shardSize": {{shard}}, "seed": 3 }
            }
            """);
        return path;
    }

    /// <summary>The fault-free result: the same config trained in local mode.</summary>
    public static byte[] Reference(string directory, string config)
    {
        string save = Path.Combine(directory, "reference.safetensors");
        var (code, _, stderr) = CliProcess.Run(["train", "--config", config, "--threads", "2", "--save", save, "--quiet"], TimeSpan.FromSeconds(120));
        Assert.True(code == 0, stderr);
        return File.ReadAllBytes(save);
    }

    /// <summary>Every sample of every epoch appears in exactly one block of the (de-duplicated) step log.</summary>
    public static void AssertEverySampleOncePerEpoch(SortedDictionary<long, StepRecord> steps, int samples, int epochs, long totalSteps)
    {
        Assert.Equal(Enumerable.Range(0, (int)totalSteps).Select(i => (long)i), steps.Keys);
        for (int epoch = 0; epoch < epochs; epoch++)
        {
            var seen = steps.Values.Where(s => s.Epoch == epoch).SelectMany(s => s.Blocks).SelectMany(b => b.Indices).Order();
            Assert.Equal(Enumerable.Range(0, samples), seen);
        }
    }

    public static string NewDirectory(string prefix) => System.IO.Directory.CreateTempSubdirectory(prefix).FullName;

    public static void DeleteDirectory(string path)
    {
        try { System.IO.Directory.Delete(path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>Workers that computed a block of <paramref name="step"/>.</summary>
    public static IEnumerable<string> Executors(StepRecord step) => step.Blocks.Select(b => b.Executor).Distinct();
}
