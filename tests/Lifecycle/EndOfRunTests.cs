// The coordinator's end-of-run notice without processes: every worker is called at once and nobody waits when all
// calls arrive; a worker the call misses learns it from its next heartbeat answer, and the linger ends as soon as it
// has; one that never heartbeats again is waited for at most the linger; once the run has ended, registrations are
// refused with Unavailable and only heartbeats of this run carry the notice.
using System.Collections.Concurrent;
using System.Diagnostics;
using DistTrain.Coordinator.Distributed;
using DistTrain.Protos;
using Grpc.Core;
using CoreOutcome = DistTrain.Core.Training.RunOutcome;

namespace DistTrain.Tests.Lifecycle;

public sealed class EndOfRunTests
{
    private static readonly TimeSpan LongLinger = TimeSpan.FromSeconds(30);

    /// <summary>Records each call; fails those to <paramref name="unreachable"/> as a refused connection would.</summary>
    private static EndOfRun.Caller Calls(ConcurrentQueue<(string Address, EndRunRequest Request)> log, params string[] unreachable) =>
        (address, request, _) =>
        {
            log.Enqueue((address, request));
            return unreachable.Contains(address)
                ? Task.FromException(new RpcException(new Status(StatusCode.Unavailable, "connection refused")))
                : Task.CompletedTask;
        };

    private static EndOfRun.Recipient Worker(int n, bool heartbeating = true) => new($"w{n}", $"http://127.0.0.1:{5100 + n}", heartbeating);

    [Fact]
    public async Task EveryWorkerIsCalledWithTheRunAndTheNoticeAndNobodyWaitsWhenAllCallsArrive()
    {
        var end = new EndOfRun();
        var calls = new ConcurrentQueue<(string, EndRunRequest)>();
        var clock = Stopwatch.StartNew();
        string line = await end.AnnounceAsync(EndOfRun.NoticeOf(CoreOutcome.Finished, ""), "run-1", [Worker(1), Worker(2)], Calls(calls), LongLinger);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"waited {clock.Elapsed} although every call arrived");
        Assert.Equal("run finished; told the workers: w1, w2 at once", line);
        Assert.Equal(["http://127.0.0.1:5101", "http://127.0.0.1:5102"], calls.Select(c => c.Item1).Order());
        Assert.All(calls, c =>
        {
            Assert.Equal(Protocol.Version, c.Item2.ProtocolVersion);
            Assert.Equal("run-1", c.Item2.CoordinatorRun);
            Assert.Equal(RunOutcome.Finished, c.Item2.End.Outcome);
        });
    }

    [Fact]
    public async Task AWorkerTheCallMissesHearsItAtItsHeartbeatAndTheLingerEndsThen()
    {
        var end = new EndOfRun();
        Assert.Null(end.AnswerHeartbeat("w2")); // the run goes on
        var calls = new ConcurrentQueue<(string, EndRunRequest)>();
        var clock = Stopwatch.StartNew();
        var announcing = end.AnnounceAsync(EndOfRun.NoticeOf(CoreOutcome.Failed, "step 3: no ready workers are left\nsecond line"), "run-1",
            [Worker(1), Worker(2)], Calls(calls, "http://127.0.0.1:5102"), LongLinger);
        // Its heartbeat comes while the coordinator lingers (polled: the notice is set before the calls go out).
        RunEnd? answer = null;
        while (answer is null)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "the notice was never set");
            answer = end.AnswerHeartbeat("w2");
            if (answer is null) await Task.Delay(10);
        }
        Assert.Equal(RunOutcome.Failed, answer.Outcome);
        Assert.Equal("step 3: no ready workers are left", answer.Detail); // one line
        string line = await announcing;
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"lingered {clock.Elapsed} after every worker was told");
        Assert.Equal("run failed: step 3: no ready workers are left; told the workers: w1 at once; w2 at a heartbeat", line);
    }

    [Fact]
    public async Task AWorkerNeitherCallNorHeartbeatReachesIsWaitedForOnlyTheLingerAndALostOneNotAtAll()
    {
        var calls = new ConcurrentQueue<(string, EndRunRequest)>();
        var linger = TimeSpan.FromMilliseconds(300);
        var clock = Stopwatch.StartNew();
        string line = await new EndOfRun().AnnounceAsync(EndOfRun.NoticeOf(CoreOutcome.Interrupted, "SIGTERM"), "run-1",
            [Worker(1), Worker(2)], Calls(calls, "http://127.0.0.1:5102"), linger);
        // Timers may fire a tick early: a few milliseconds short of the linger is still the linger.
        Assert.True(clock.Elapsed >= linger - TimeSpan.FromMilliseconds(20) && clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed}");
        Assert.StartsWith("run interrupted: SIGTERM; told the workers: w1 at once; not told: w2 (Unavailable: connection refused), after waiting", line);

        // A lost worker (no heartbeat for the timeout) is called too, but its silence is not waited for.
        clock.Restart();
        line = await new EndOfRun().AnnounceAsync(EndOfRun.NoticeOf(CoreOutcome.Finished, ""), "run-1",
            [Worker(1), Worker(3, heartbeating: false)], Calls(calls, "http://127.0.0.1:5103"), LongLinger);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"waited {clock.Elapsed} for a lost worker");
        Assert.Equal("run finished; told the workers: w1 at once; not told: w3 (Unavailable: connection refused)", line);
        Assert.Equal("run finished; told the workers: none registered",
            await new EndOfRun().AnnounceAsync(EndOfRun.NoticeOf(CoreOutcome.Finished, ""), "run-1", [], Calls(calls), LongLinger));
    }

    [Fact]
    public async Task OnceTheRunEndedRegistrationsAreUnavailableAndOnlyThisRunsHeartbeatsCarryTheNotice()
    {
        var plane = new Distributed.ControlPlane(parameterCount: 10, bulk: null);
        var end = new EndOfRun();
        var service = new CoordinatorService(plane.Driver, new ClusterLog(_ => { }), end);
        var registered = await service.Register(new RegisterRequest { ProtocolVersion = Protocol.Version, Address = "http://127.0.0.1:5", Cores = 1, SessionSecret = Google.Protobuf.ByteString.CopyFrom(new byte[32]) }, null!);
        var heartbeat = new HeartbeatRequest
        {
            ProtocolVersion = Protocol.Version, WorkerId = registered.WorkerId, CoordinatorRun = registered.CoordinatorRun,
            SessionSecret = Google.Protobuf.ByteString.CopyFrom(new byte[32]),
        };
        var during = await service.Heartbeat(heartbeat, null!);
        Assert.True(during.Known);
        Assert.Null(during.RunEnd);

        var calls = new ConcurrentQueue<(string, EndRunRequest)>();
        await end.AnnounceAsync(EndOfRun.NoticeOf(CoreOutcome.Finished, ""), plane.Driver.RunId,
            [new EndOfRun.Recipient(registered.WorkerId, "http://127.0.0.1:5", true)], Calls(calls), LongLinger);
        var after = await service.Heartbeat(heartbeat, null!);
        Assert.Equal(RunOutcome.Finished, after.RunEnd?.Outcome);
        // A worker of an earlier coordinator at this address is not told about this run's end: it registers again.
        var stale = await service.Heartbeat(new HeartbeatRequest { ProtocolVersion = Protocol.Version, WorkerId = registered.WorkerId, CoordinatorRun = "another-run" }, null!);
        Assert.False(stale.Known);
        Assert.Null(stale.RunEnd);
        var late = await Assert.ThrowsAsync<RpcException>(() => service.Register(
            new RegisterRequest { ProtocolVersion = Protocol.Version, Address = "http://127.0.0.1:6", Cores = 1, SessionSecret = Google.Protobuf.ByteString.CopyFrom(new byte[32]) }, null!));
        Assert.Equal(StatusCode.Unavailable, late.StatusCode);
        plane.Driver.Tick();
        Assert.Single(plane.Driver.View.Workers);
    }

    [Fact]
    public void TheNoticeIsOneLineOfBoundedLengthAndAnOutcomeIsRequired()
    {
        var notice = RunEndNotice.Create(RunOutcome.Failed, new string('x', 5000) + "\nmore");
        Assert.Equal(RunEndNotice.MaxDetailLength, notice.Detail.Length);
        Assert.Null(RunEndNotice.Problem(notice));
        Assert.Throws<ArgumentOutOfRangeException>(() => RunEndNotice.Create(RunOutcome.Unspecified, ""));
        // Printed in the worker's log: no control characters from the wire.
        Assert.Equal("failed: a?b ?", RunEndNotice.Describe(new RunEnd { Outcome = RunOutcome.Failed, Detail = "a\u0007b \u001b" }));
    }
}
