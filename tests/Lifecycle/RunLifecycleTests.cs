// The end of a run as real processes see it: when the coordinator's run finishes or fails its workers exit 0 within
// 5 s of it (its own exit code carries the verdict); a worker that never registers exits 1; a coordinator that crashes
// and comes back with --resume is not an end (the worker waits, rejoins and finishes the run); a --serve-forever
// worker outlives the run, trains the next coordinator's, and stops cleanly on SIGTERM. Every wait is bounded and only
// processes started here are signalled.
using System.Diagnostics;
using DistTrain.Tests.Distributed;
using DistTrain.Tests.Fault;

namespace DistTrain.Tests.Lifecycle;

[Collection(FaultProcessCollection.Name)]
public sealed class RunLifecycleTests : IDisposable
{
    private static readonly TimeSpan RunTimeout = TimeSpan.FromSeconds(120);
    /// <summary>How long after its coordinator a worker may take to exit.</summary>
    private static readonly TimeSpan WorkerExitBound = TimeSpan.FromSeconds(5);
    private readonly string _dir = FaultRuns.NewDirectory("disttrain-lifecycle-");
    private readonly ProcessHarness _processes = new();

    private (Process Process, System.Text.StringBuilder Output) Worker(string url, params string[] extra) =>
        WorkerWithCache(url, "cache", extra);

    private (Process Process, System.Text.StringBuilder Output) WorkerWithCache(string url, string cache, params string[] extra) =>
        _processes.Start(ProcessHarness.WorkerDll, ["--coordinator", url, "--threads", "1", "--port", "0", "--register-timeout", "60",
            "--cache-dir", Path.Combine(_dir, cache), .. extra]);

    private (Process Process, System.Text.StringBuilder Output) Coordinator(string config, string url, int expect, params string[] extra) =>
        _processes.Start(ProcessHarness.CoordinatorDll, ["train", "--config", config, "--listen", url, "--expect-workers", expect.ToString(),
            "--quiet", "--wait-seconds", "60", .. extra]);

    /// <summary>Each worker exits 0 within <see cref="WorkerExitBound"/> of the coordinator's exit; returns their output.</summary>
    private static IReadOnlyList<string> AssertWorkersExitZeroSoonAfter(params (Process Process, System.Text.StringBuilder Output)[] workers)
    {
        var outputs = new List<string>();
        var clock = Stopwatch.StartNew();
        foreach (var worker in workers)
        {
            var left = WorkerExitBound - clock.Elapsed;
            bool exited = worker.Process.WaitForExit(left > TimeSpan.Zero ? left : TimeSpan.Zero);
            Assert.True(exited, $"worker {worker.Process.Id} still runs {WorkerExitBound.TotalSeconds}s after its coordinator:\n{ProcessHarness.Text(worker.Output)}");
            worker.Process.WaitForExit();
            Assert.True(worker.Process.ExitCode == 0, $"worker exit code {worker.Process.ExitCode}:\n{ProcessHarness.Text(worker.Output)}");
            outputs.Add(ProcessHarness.Text(worker.Output));
        }
        return outputs;
    }

    [Fact]
    public void WhenTheRunFinishesBothWorkersExitZeroWithinFiveSeconds()
    {
        string config = FaultRuns.WriteConfig(_dir, samples: 640, epochs: 2);
        string url = $"http://127.0.0.1:{ProcessHarness.FreePort()}";
        var coordinator = Coordinator(config, url, 2, "--save", Path.Combine(_dir, "final.safetensors"));
        var workers = new[] { Worker(url), Worker(url) };
        var (code, output) = ProcessHarness.Wait(coordinator, RunTimeout);
        Assert.True(code == 0, output);
        Assert.Contains("run finished; told the workers: w1, w2 at once", output.Replace("w2, w1", "w1, w2"));
        foreach (var log in AssertWorkersExitZeroSoonAfter(workers))
            Assert.Contains("finished; this worker's part is done, exiting", log);
    }

    [Fact]
    public void WhenTheRunFailsAfterTheWorkersRegisteredTheyExitZeroAndTheCoordinatorOne()
    {
        // Two IDX directories of one shape with different samples: the second worker's copy is refused by fingerprint,
        // and with both expected workers required the run fails once both have answered.
        string ours = Path.Combine(_dir, "our-data"), other = Path.Combine(_dir, "other-data");
        Directory.CreateDirectory(ours);
        Directory.CreateDirectory(other);
        Data.IdxFiles.WriteMnistLayout(ours, train: 300, test: 50, gzip: false);
        Data.IdxFiles.WriteMnistLayout(other, train: 299, test: 50, gzip: false);
        string config = Path.Combine(_dir, "idx.json");
        File.WriteAllText(config, $$"""
            {
              "model": { "inputs": 12, "layers": [ { "type": "linear", "units": 10 } ] },
              "data": { "format": "idx", "path": "{{ours}}" },
              "training": { "epochs": 1, "batchSize": 100, "shardSize": 25 }
            }
            """);
        string url = $"http://127.0.0.1:{ProcessHarness.FreePort()}";
        var coordinator = Coordinator(config, url, 2);
        // Each worker has its own cache: were the first one's data sent into a shared cache before the second registered,
        // the second would find the run's data there and be ready, whatever its --data holds.
        var workers = new[] { WorkerWithCache(url, "cache-1"), WorkerWithCache(url, "cache-2", "--data", other) };
        var (code, output) = ProcessHarness.Wait(coordinator, RunTimeout);
        Assert.True(code == 1, output);
        Assert.Contains("error: only 1 of 2 worker(s) ready", output);
        Assert.Contains("run failed: only 1 of 2 worker(s) ready", output);
        // The refused worker is told too: it registered for this run.
        foreach (var log in AssertWorkersExitZeroSoonAfter(workers))
            Assert.Contains("failed: only 1 of 2 worker(s) ready", log);
    }

    [Fact]
    public void AWorkerThatNeverRegistersExitsOne()
    {
        // Its own failure: nothing listens at the coordinator's address for the whole --register-timeout.
        var worker = _processes.Start(ProcessHarness.WorkerDll, "--coordinator", $"http://127.0.0.1:{ProcessHarness.FreePort()}",
            "--threads", "1", "--port", "0", "--register-timeout", "2");
        var (code, output) = ProcessHarness.Wait(worker, TimeSpan.FromSeconds(60));
        Assert.True(code == 1, output);
        Assert.Contains("stayed unreachable for 2s (--register-timeout)", output);
    }

    [Fact]
    public void ACoordinatorThatCrashesAndResumesIsNotTheEndOfTheRun()
    {
        // 1,500 steps: the crash at step 30 lands mid-run even when the test sees that step late.
        string config = FaultRuns.WriteConfig(_dir, samples: 8000, epochs: 12);
        var reference = FaultRuns.Reference(_dir, config);
        using var cluster = new FaultCluster(_dir, config, workerSlots: 1);
        string[] flags = ["--checkpoint-dir", cluster.Checkpoints, "--checkpoint-every", "20"];
        cluster.StartCoordinator(1, flags);
        cluster.StartWorker(0);
        cluster.WaitForStep(30);
        Assert.False(cluster.Coordinator.HasExited, $"the run ended before the crash:\n{cluster.Diagnostics()}");
        FaultCluster.Signal(cluster.Coordinator, FaultCluster.SigKill);
        // No notice came, so the worker keeps trying to reach its coordinator (it heartbeats every second).
        Assert.False(cluster.Worker(0).WaitForExit(3000), $"the worker exited when its coordinator crashed:\n{cluster.Diagnostics()}");

        cluster.StartCoordinator(1, [.. flags, "--resume"]);
        Assert.True(cluster.WaitForCoordinator(RunTimeout) == 0, cluster.Diagnostics());
        Assert.Equal(reference, File.ReadAllBytes(cluster.Save));
        Assert.True(cluster.Worker(0).WaitForExit(WorkerExitBound), $"the worker outlived the resumed run:\n{cluster.Diagnostics()}");
        Assert.Equal(0, cluster.Worker(0).ExitCode);
        Assert.True(FaultCluster.Occurrences(cluster.WorkerOutput(0), "registered with") >= 2, cluster.Diagnostics());
    }

    [Fact]
    public void AServeForeverWorkerOutlivesTheRunTrainsTheNextCoordinatorsAndStopsCleanlyOnSigterm()
    {
        string config = FaultRuns.WriteConfig(_dir, samples: 640, epochs: 2);
        var reference = FaultRuns.Reference(_dir, config);
        using var cluster = new FaultCluster(_dir, config, workerSlots: 1);
        cluster.StartWorker(0, extra: ["--serve-forever"]);
        cluster.StartCoordinator(1);
        Assert.True(cluster.WaitForCoordinator(RunTimeout) == 0, cluster.Diagnostics());
        Assert.Equal(reference, File.ReadAllBytes(cluster.Save));
        File.Delete(cluster.Save);
        var worker = cluster.Worker(0);
        WaitForWorkerOutput(cluster, "--serve-forever: waiting for the next coordinator");
        Assert.False(worker.HasExited, cluster.Diagnostics());

        // The next coordinator at the same URL: the worker registers with it (another run, ids from w1 again).
        cluster.StartCoordinator(1);
        Assert.True(cluster.WaitForCoordinator(RunTimeout) == 0, cluster.Diagnostics());
        Assert.Equal(reference, File.ReadAllBytes(cluster.Save));
        Assert.True(FaultCluster.Occurrences(cluster.WorkerOutput(0), "registered with") >= 2, cluster.Diagnostics());
        WaitForWorkerOutput(cluster, "--serve-forever: waiting for the next coordinator", count: 2);
        Assert.False(worker.HasExited, cluster.Diagnostics());

        // Between runs, SIGTERM stops it at once with exit code 0 (ASP.NET's console lifetime).
        FaultCluster.Signal(worker, FaultCluster.SigTerm);
        Assert.True(worker.WaitForExit(10_000), $"the worker ignored SIGTERM:\n{cluster.Diagnostics()}");
        Assert.Equal(0, worker.ExitCode);
    }

    private static void WaitForWorkerOutput(FaultCluster cluster, string text, int count = 1)
    {
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (FaultCluster.Occurrences(cluster.WorkerOutput(0), text) < count)
        {
            Assert.False(cluster.Worker(0).HasExited, $"the worker exited:\n{cluster.Diagnostics()}");
            Assert.True(DateTime.UtcNow < until, $"the worker never said '{text}' ×{count}:\n{cluster.Diagnostics()}");
            Thread.Sleep(20);
        }
    }

    public void Dispose()
    {
        _processes.Dispose();
        FaultRuns.DeleteDirectory(_dir);
    }
}
