// Real processes, one worker fault at a time: a worker SIGKILLed mid-run and restarted, a worker that joins at
// step k, and the coordinator left with no worker (fails with one line, or waits visibly and continues). Faults are
// injected at seeded steps read from the coordinator's step log; final weights must equal the fault-free run's.
using System.Text.RegularExpressions;

namespace DistTrain.Tests.Fault;

[Collection(FaultProcessCollection.Name)]
public sealed class WorkerFaultTests : IDisposable
{
    private static readonly TimeSpan RunTimeout = TimeSpan.FromSeconds(120);
    private readonly string _dir = FaultRuns.NewDirectory("disttrain-fault-");

    [Fact]
    public void WorkerKilledMidStepThenRestartedGivesIdenticalWeightsAndEverySampleOnce()
    {
        // ~14,400 steps: long enough for a restart and rejoin (1–2 s) even over the same-host link (~0.3 ms a step).
        const int samples = 1536, epochs = 600, batch = 64;
        string config = FaultRuns.WriteConfig(_dir, samples, epochs, batch: batch);
        var reference = FaultRuns.Reference(_dir, config);
        var random = new Random(20240607);
        int victim = random.Next(3);
        long killAt = random.Next(8, 40);

        using var cluster = new FaultCluster(_dir, config, workerSlots: 3);
        cluster.StartCoordinator(3);
        for (int slot = 0; slot < 3; slot++) cluster.StartWorker(slot);
        cluster.WaitForStep(killAt);
        FaultCluster.Signal(cluster.Worker(victim), FaultCluster.SigKill);
        cluster.WaitForOutput("failed (");
        cluster.StartWorker(victim); // same port: the same address comes back and keeps its id
        cluster.WaitForOutput("rejoined and is ready");

        Assert.Equal(0, cluster.WaitForCoordinator(RunTimeout));
        Assert.Equal(reference, File.ReadAllBytes(cluster.Save));
        var steps = cluster.ReadSteps();
        FaultRuns.AssertEverySampleOncePerEpoch(steps, samples, epochs, totalSteps: epochs * samples / batch);
        // The failure was noticed inside a step at or after the kill, and the worker computed again after rejoining.
        var failure = Regex.Match(cluster.CoordinatorOutput, @"step (\d+): worker (w\d) failed");
        Assert.True(failure.Success && long.Parse(failure.Groups[1].Value) >= killAt, cluster.CoordinatorOutput);
        string id = failure.Groups[2].Value;
        var rejoin = Regex.Match(cluster.CoordinatorOutput, $@"worker {id} \S+ 1 thread\(s\)\) rejoined and is ready during step (\d+)");
        Assert.True(rejoin.Success, cluster.CoordinatorOutput);
        long back = long.Parse(rejoin.Groups[1].Value) + 1;
        Assert.True(back < steps.Count, $"the run ended before {id} could compute again (back at step {back})");
        // Same-host workers claim the step's blocks from one pool, so a worker may find none left in a given step of
        // this small model; it must compute again after rejoining, and never in a step it was not part of.
        Assert.Contains(steps.Where(s => s.Key >= back), s => FaultRuns.Executors(s.Value).Contains(id));
    }

    [Fact]
    public void WorkerJoiningAtStepKContributesFromStepKPlusOne()
    {
        // Long enough (12,800 steps) that the second worker's start-up (1–2 s, more on a busy machine) ends mid-run:
        // over the same-host step link a step of this model takes ~0.3 ms, and 2,000 steps ended before it was ready.
        const int samples = 2048, epochs = 400, batch = 64;
        string config = FaultRuns.WriteConfig(_dir, samples, epochs, batch: batch);
        var reference = FaultRuns.Reference(_dir, config);
        using var cluster = new FaultCluster(_dir, config, workerSlots: 2);
        cluster.StartCoordinator(1);
        cluster.StartWorker(0);
        cluster.WaitForStep(new Random(11).Next(5, 20));
        cluster.StartWorker(1);

        Assert.Equal(0, cluster.WaitForCoordinator(RunTimeout));
        Assert.Equal(reference, File.ReadAllBytes(cluster.Save));
        var joined = Regex.Match(cluster.CoordinatorOutput, @"worker w2 \S+ 1 thread\(s\)\) ready during step (\d+) \(gets work from step (\d+)\)");
        Assert.True(joined.Success, cluster.CoordinatorOutput);
        long k = long.Parse(joined.Groups[1].Value);
        var steps = cluster.ReadSteps();
        FaultRuns.AssertEverySampleOncePerEpoch(steps, samples, epochs, totalSteps: epochs * samples / batch);
        Assert.True(k + 1 < steps.Count, $"w2 joined during the last step {k}");
        // Not a step earlier than k + 1; from then on it shares the steps' pool with w1 (same host), so it computes in
        // the steps where it claims blocks before w1 has taken them all — with the current weights, or the saved
        // weights would differ from local mode's.
        Assert.All(steps.Where(s => s.Key <= k), s => Assert.DoesNotContain("w2", FaultRuns.Executors(s.Value)));
        Assert.Contains(steps.Where(s => s.Key > k), s => FaultRuns.Executors(s.Value).Contains("w2"));
    }

    [Fact]
    public void NoWorkerLeftWithoutWaitingExitsNonZeroWithOneLine()
    {
        // ~9,600 steps: the kill at step 5 lands long before the run could end on its own, even at ~0.3 ms a step.
        string config = FaultRuns.WriteConfig(_dir, samples: 1024, epochs: 600);
        using var cluster = new FaultCluster(_dir, config, workerSlots: 1);
        cluster.StartCoordinator(1);
        cluster.StartWorker(0);
        cluster.WaitForStep(5);
        FaultCluster.Signal(cluster.Worker(0), FaultCluster.SigKill);
        Assert.Equal(1, cluster.WaitForCoordinator(TimeSpan.FromSeconds(20)));
        var errors = cluster.CoordinatorOutput.Split('\n').Where(l => l.StartsWith("error:", StringComparison.Ordinal)).ToList();
        Assert.Contains("no ready workers are left", Assert.Single(errors));
        Assert.Contains("--wait-for-workers", errors[0]);
    }

    [Fact]
    public void NoWorkerLeftWaitsVisiblyThenContinuesWhenOneReturnsOrGivesUp()
    {
        const int samples = 512, epochs = 1280; // 10,240 steps: the stop and the kill at step 4 land mid-run, even late
        string config = FaultRuns.WriteConfig(_dir, samples, epochs);
        var reference = FaultRuns.Reference(_dir, config);
        using (var cluster = new FaultCluster(_dir, config, workerSlots: 1))
        {
            // A stopped worker keeps its connection: only missing heartbeats (3 s here) reveal it.
            cluster.StartCoordinator(1, "--wait-for-workers", "60");
            cluster.StartWorker(0);
            cluster.WaitForStep(4);
            Assert.False(cluster.Coordinator.HasExited, $"the run ended before the stop:\n{cluster.Diagnostics()}");
            FaultCluster.Signal(cluster.Worker(0), FaultCluster.SigStop);
            cluster.WaitForOutput("waiting for workers", count: 2, timeout: TimeSpan.FromSeconds(20));
            FaultCluster.Signal(cluster.Worker(0), FaultCluster.SigCont);
            Assert.Equal(0, cluster.WaitForCoordinator(RunTimeout));
            Assert.Equal(reference, File.ReadAllBytes(cluster.Save));
            Assert.Contains("worker(s) ready after waiting", cluster.CoordinatorOutput);
        }

        string again = Path.Combine(_dir, "give-up");
        Directory.CreateDirectory(again);
        using (var cluster = new FaultCluster(again, config, workerSlots: 1))
        {
            cluster.StartCoordinator(1, "--wait-for-workers", "4");
            cluster.StartWorker(0);
            cluster.WaitForStep(4);
            Assert.False(cluster.Coordinator.HasExited, $"the run ended before the kill:\n{cluster.Diagnostics()}");
            FaultCluster.Signal(cluster.Worker(0), FaultCluster.SigKill);
            Assert.Equal(1, cluster.WaitForCoordinator(TimeSpan.FromSeconds(30)));
            string output = cluster.CoordinatorOutput;
            Assert.True(FaultCluster.Occurrences(output, "waiting for workers") >= 2, output);
            Assert.Contains("error: step", output);
            Assert.Contains("no worker became ready within --wait-for-workers 4s", output);
        }
    }

    public void Dispose() => FaultRuns.DeleteDirectory(_dir);
}
