// Worker states from heartbeats and latencies, replayed on a fake clock: silence past the limit is Lost, far slower
// than the median is Slow, and a local run's single worker is Busy while training and Ready otherwise.
using DistTrain.Coordinator.Dashboard;

namespace DistTrain.Tests.Dashboard;

public class WorkerHealthTests
{
    private static readonly WorkerHealthOptions Options = new() { LostAfterSeconds = 3, SlowFactor = 2, SlowMinimumSeconds = 0.05 };

    [Theory]
    [InlineData(10.0, 10.0, WorkerState.Busy)]
    [InlineData(10.0, 12.9, WorkerState.Busy)]
    [InlineData(10.0, 13.0, WorkerState.Busy)]   // exactly at the limit still counts as heard from
    [InlineData(10.0, 13.01, WorkerState.Lost)]
    [InlineData(10.0, 100.0, WorkerState.Lost)]
    public void HeartbeatSilenceMeansLost(double lastHeartbeat, double now, WorkerState expected) =>
        Assert.Equal(expected, WorkerHealth.Classify(new WorkerObservation(lastHeartbeat, true, false, 0.1), now, 0.1, Options));

    [Fact]
    public void StatesFollowAssignmentAndRejoining()
    {
        Assert.Equal(WorkerState.Ready, WorkerHealth.Classify(new WorkerObservation(5, false, false, double.NaN), 5, double.NaN, Options));
        Assert.Equal(WorkerState.Rejoining, WorkerHealth.Classify(new WorkerObservation(5, true, true, 0.1), 5, 0.1, Options));
        // Lost wins over rejoining: a rejoining worker that falls silent again is lost.
        Assert.Equal(WorkerState.Lost, WorkerHealth.Classify(new WorkerObservation(1, true, true, 0.1), 5, 0.1, Options));
    }

    [Fact]
    public void FarSlowerThanTheMedianIsSlow()
    {
        WorkerObservation[] workers =
        [
            new(10, true, false, 0.20), new(10, true, false, 0.22), new(10, true, false, 0.21), new(10, true, false, 0.90),
            new(2, true, false, 5.00), // lost: its latency is not part of the median
        ];
        var states = WorkerHealth.ClassifyAll(workers, now: 10.5, Options);
        Assert.Equal([WorkerState.Busy, WorkerState.Busy, WorkerState.Busy, WorkerState.Slow, WorkerState.Lost], states);
    }

    [Fact]
    public void MillisecondJitterIsNotSlow()
    {
        WorkerObservation[] workers = [new(0, true, false, 0.001), new(0, true, false, 0.010)];
        Assert.All(WorkerHealth.ClassifyAll(workers, 0, Options), s => Assert.Equal(WorkerState.Busy, s));
    }

    [Fact]
    public void SigkillScenarioIsLostWithinFiveSeconds()
    {
        // Heartbeats every 0.5 s until the worker is killed at t = 20; the dashboard samples every 0.25 s.
        double lastHeartbeat = 20;
        double lostAt = double.NaN;
        for (double t = 20; t < 30; t += 0.25)
            if (WorkerHealth.Classify(new WorkerObservation(lastHeartbeat, true, false, 0.1), t, 0.1, Options) == WorkerState.Lost)
            {
                lostAt = t;
                break;
            }
        Assert.InRange(lostAt - 20, 3, 5);
    }

    [Fact]
    public void LocalWorkerIsReadyThenBusy()
    {
        var telemetry = new TrainingTelemetry(["0"], 1, new DashboardOptions());
        var source = new LocalWorkerStatusSource(telemetry, threads: 2, Options);
        var before = Assert.Single(source.Snapshot());
        Assert.Equal(("local", WorkerState.Ready, 2), (before.Id, before.State, before.Cores));
        telemetry.Start("model", 0, 10);
        Assert.Equal(WorkerState.Busy, Assert.Single(source.Snapshot()).State);
    }
}
