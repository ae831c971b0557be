// Scripted membership scenarios on the registry state machine (fake clock, no network): lost → rejoining → ready
// with the same id, stale failures of a previous life ignored, joining only at a step boundary, stalls found by
// ticks, and the no-worker wait that either returns, or fails after visible notices.
using DistTrain.Coordinator.Distributed;
using DistTrain.Protos;

namespace DistTrain.Tests.Fault;

public class MembershipScenarioTests
{
    private sealed class NullClient : IWorkerClient
    {
        public Task<PrepareReply> PrepareAsync(PrepareRequest request, DateTime deadline, CancellationToken cancellationToken) => throw new NotSupportedException();
        public Task<ReceiveDatasetReply> SendDatasetAsync(string fingerprint, ReadOnlyMemory<byte> payload, DateTime deadline, CancellationToken cancellationToken) => throw new NotSupportedException();
        public Task<ComputeReply> ComputeAsync(ComputeRequest request, DateTime deadline, CancellationToken cancellationToken) => throw new NotSupportedException();
        public void Dispose() { }
    }

    private static readonly TimeSpan Second = TimeSpan.FromSeconds(1);

    private static (WorkerEntry Entry, IWorkerClient Client) Ready(WorkerRegistry registry, string address, TimeSpan now)
    {
        var entry = registry.Register(address, 1, now);
        Assert.Contains(entry, registry.TakeUnprepared());
        var client = new NullClient();
        registry.MarkReady(entry.Id, client);
        Assert.Equal(WorkerState.Ready, entry.State);
        return (entry, client);
    }

    [Fact]
    public void LostWorkerComingBackKeepsItsIdAndIsPreparedAgain()
    {
        var registry = new WorkerRegistry(Second, 3 * Second);
        var (w1, client) = Ready(registry, "http://127.0.0.1:1", TimeSpan.Zero);
        Assert.True(registry.MarkLost(w1.Id, client, "request failed"));
        Assert.False(registry.Heartbeat(w1.Id, Second)); // tells the worker to register again

        var back = registry.Register("http://127.0.0.1:1", 2, 2 * Second);
        Assert.Same(w1, back);
        Assert.Equal(WorkerState.Rejoining, back.State);
        Assert.Null(back.Client);
        Assert.Equal(1, back.Rejoins);
        Assert.Empty(registry.BeginStep(7)); // not planned until prepared again
        Assert.Contains(back, registry.TakeUnprepared());
        Assert.Equal(WorkerState.Preparing, back.State);
        registry.MarkReady(back.Id, new NullClient());
        Assert.Equal(7, back.ReadyDuringStep);
        Assert.Equal(["w1"], registry.BeginStep(8).Select(w => w.Id));
    }

    [Fact]
    public void FailureOfAPreviousLifeDoesNotDropTheRejoinedWorker()
    {
        var registry = new WorkerRegistry(Second, 3 * Second);
        var (w1, oldClient) = Ready(registry, "http://127.0.0.1:1", TimeSpan.Zero);
        // The worker restarted and registered again while a request to its old process was still in flight.
        registry.Register("http://127.0.0.1:1", 1, Second);
        registry.TakeUnprepared();
        var newClient = new NullClient();
        registry.MarkReady(w1.Id, newClient);
        Assert.False(registry.MarkLost(w1.Id, oldClient, "old request failed"));
        Assert.Equal(WorkerState.Ready, w1.State);
        Assert.False(registry.IsCurrent(w1.Id, oldClient));
        Assert.True(registry.IsCurrent(w1.Id, newClient));
    }

    [Fact]
    public void WorkerReadyDuringStepKIsPlannedFromStepKPlusOne()
    {
        var registry = new WorkerRegistry(Second, 3 * Second);
        Ready(registry, "http://127.0.0.1:1", TimeSpan.Zero);
        Assert.Single(registry.BeginStep(4));
        var (w2, _) = Ready(registry, "http://127.0.0.1:2", TimeSpan.Zero);
        Assert.Equal(4, w2.ReadyDuringStep);
        Assert.Equal(["w1", "w2"], registry.BeginStep(5).Select(w => w.Id));
    }

    [Fact]
    public void SilentWorkerIsLostByTicksAndAnotherAddressIsANewWorker()
    {
        var registry = new WorkerRegistry(Second, 3 * Second);
        var (w1, _) = Ready(registry, "http://127.0.0.1:1", TimeSpan.Zero);
        var (w2, _) = Ready(registry, "http://127.0.0.1:2", TimeSpan.Zero);
        Assert.True(registry.Heartbeat(w2.Id, 2 * Second));
        Assert.Empty(registry.Tick(3 * Second));
        Assert.Equal([w1], registry.Tick(3.5 * Second)); // stopped: no heartbeat for 3.5 s
        Assert.Equal(WorkerState.Lost, w1.State);
        Assert.Contains("no heartbeat", w1.Reason);
        var w3 = registry.Register("http://127.0.0.1:3", 1, 4 * Second);
        Assert.Equal("w3", w3.Id);
        Assert.Contains("w1 lost", registry.DescribeAbsent());
    }

    [Fact]
    public async Task WaitFailsAtOnceWithoutALimitAndAfterNoticesWithOne()
    {
        var registry = new WorkerRegistry(Second, 3 * Second);
        var none = await Assert.ThrowsAsync<WorkersUnavailableException>(() => WorkerWait.None(registry).UntilReadyAsync(3, default));
        Assert.Contains("pass --wait-for-workers", none.Message);

        var notices = new List<string>();
        // Notices every 100 ms over 1.5 s: fewer than two would need the timer to stall for 1.4 s, even on a busy machine.
        var wait = new WorkerWait(registry, TimeSpan.FromMilliseconds(1500), TimeSpan.FromMilliseconds(100), notices.Add);
        var timedOut = await Assert.ThrowsAsync<WorkersUnavailableException>(() => wait.UntilReadyAsync(3, default));
        Assert.Contains("no worker became ready within", timedOut.Message);
        Assert.True(notices.Count >= 2, string.Join("\n", notices));
        Assert.All(notices, n => Assert.Contains("waiting for workers", n));
    }

    [Fact]
    public async Task WaitReturnsWhenAWorkerBecomesReady()
    {
        var registry = new WorkerRegistry(Second, 3 * Second);
        var notices = new List<string>();
        var waiting = new WorkerWait(registry, TimeSpan.FromSeconds(30), Second, notices.Add).UntilReadyAsync(0, default);
        Assert.False(waiting.IsCompleted);
        Ready(registry, "http://127.0.0.1:1", TimeSpan.Zero);
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Contains(notices, n => n.Contains("ready after waiting"));
    }

    [Fact]
    public void AWorkerMeasuredVerySlowStillGetsAShardSoItIsMeasuredAgain()
    {
        Assert.Equal([7, 1], StepAssignment.Split(8, [1000, 1]));
        Assert.Equal([6, 1, 1], StepAssignment.Split(8, [1000, 1, 1]));
        Assert.Equal([1, 0], StepAssignment.Split(1, [1000, 1])); // fewer shards than workers: someone must wait
        var state = new StepAssignment(8, [("w1", 1000), ("w2", 0.001)]);
        Assert.Contains(state.Start(), d => d.Worker == "w2");
    }
}
