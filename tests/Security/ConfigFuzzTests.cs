// The config reader on 10,000 damaged JSON files (the example configs, byte-edited): each either loads or fails
// with one UserInputException line, never another exception type or a stack trace.
using System.Diagnostics;
using System.Text;
using DistTrain.Coordinator.Cli;
using DistTrain.Core;
using DistTrain.Core.Data;
using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Security;

public class ConfigFuzzTests
{
    private const int Mutations = 10_000;

    [Fact]
    public void MutatedConfigsLoadOrFailWithOneClearLine()
    {
        var clock = Stopwatch.StartNew();
        using var dir = new TempDirectory();
        string examples = Path.Combine(Distributed.ProcessHarness.RepoRoot, "examples");
        var originals = Directory.GetFiles(examples, "*.json").Order().Select(File.ReadAllBytes).ToList();
        Assert.NotEmpty(originals);
        var rng = new DeterministicRandom(2026);
        string path = dir.File("mutant.json");
        var noEnvironment = new Dictionary<string, string>();
        int loaded = 0;
        for (int i = 0; i < Mutations; i++)
        {
            byte[] bytes = Data.RobustnessTests.Mutate(originals[i % originals.Count], rng);
            File.WriteAllBytes(path, bytes);
            try
            {
                ConfigLoader.Load(path, environment: noEnvironment);
                loaded++;
            }
            catch (UserInputException e)
            {
                Assert.DoesNotContain('\n', e.Message);
            }
            catch (Exception e)
            {
                Assert.Fail($"{e.GetType().Name}: {e.Message} for input:\n{Encoding.UTF8.GetString(bytes)}");
            }
        }
        // Some mutants are harmless (a digit changed): the loop exercised the success path as well.
        Assert.InRange(loaded, 1, Mutations - 1);
        // About 20 s alone on 2 cores; the bound only catches a hang when the whole suite shares the cores.
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(180), $"took {clock.Elapsed.TotalSeconds:F0}s");
    }
}
