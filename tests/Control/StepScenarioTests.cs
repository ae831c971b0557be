// Steps on the control plane's state machine, replayed exactly on a fake clock: heartbeat expiry against the compute
// deadline, every worker gone (fail at once, or wait visibly and continue or give up), block verdicts (rejected or
// non-finite blocks recomputed elsewhere, duplicates ignored, pool blocks claimed elsewhere no error), the attempt
// limit and a step the trainer abandons.
using DistTrain.Coordinator.Control;

namespace DistTrain.Tests.Control;

[Collection(ControlScenarios.Name)]
public class StepScenarioTests
{
    private static readonly string A1 = ClusterScenario.Address(1), A2 = ClusterScenario.Address(2);
    private const BlockVerdict Valid = BlockVerdict.Valid, NonFinite = BlockVerdict.NonFinite, Invalid = BlockVerdict.Invalid,
        Elsewhere = BlockVerdict.Elsewhere;

    /// <summary>Two ready workers (w1, w2) and step 0 sent: w1 computes shards [0,2), w2 [2,4).</summary>
    private static ClusterScenario TwoWorkersInStepZero(ControlOptions? options = null)
    {
        var s = new ClusterScenario(options ?? ClusterScenario.Options(expect: 2));
        s.Join(1);
        s.Join(2);
        s.Request(0);
        Assert.Equal(["send 0.1#0 to w1#1: [0,2)", "send 0.1#1 to w2#1: [2,4)"], s.Commands.OfType<SendRequest>().Select(c => c.ToString()));
        s.Skip();
        return s;
    }

    [Fact]
    public void ASilentWorkerIsLostByHeartbeatsBeforeItsComputeDeadline()
    {
        var s = TwoWorkersInStepZero(ClusterScenario.Options(expect: 2) with { ComputeTimeout = TimeSpan.FromSeconds(5) });
        // A stopped process: no reply, no heartbeats. w1 keeps heartbeating.
        s.At(1).Heartbeat("w1").At(2).Heartbeat("w1").At(3).Heartbeat("w1");
        s.Skip();
        s.At(3.25);
        s.Expect(
            $"log: worker w2 ({A2}) lost: no heartbeat for 3.2s",
            "log: step 0: worker w2 failed (lost: no heartbeat for 3.2s); its blocks go to the others",
            "cancel 0.1#1 (w2)",
            "disconnect w2#1",
            "log: step 0: block [2, 4) reassigned to w1",
            "send 0.1#2 to w1#1: [2,4)");
        s.Reply(0, 1, 0, Valid).Reply(0, 1, 2, Valid);
        s.Expect("keep 0.1#0 blocks 0", "keep 0.1#2 blocks 1", "complete step 0: w1[0,2) w1[2,4)");
    }

    [Fact]
    public void AWorkerThatHeartbeatsButNeverAnswersFailsAtItsComputeDeadline()
    {
        var s = TwoWorkersInStepZero(ClusterScenario.Options(expect: 2) with { ComputeTimeout = TimeSpan.FromSeconds(5) });
        s.At(0.5).Reply(0, 1, 0, Valid);
        for (int t = 1; t <= 4; t++) s.At(t).Heartbeat("w1").Heartbeat("w2");
        s.At(4.9);
        s.Skip();
        s.At(5);
        s.Expect(
            "log: step 0: worker w2 failed (no reply within --compute-timeout 5s); its blocks go to the others",
            "cancel 0.1#1 (w2)",
            "disconnect w2#1",
            "log: step 0: block [2, 4) reassigned to w1",
            "send 0.1#2 to w1#1: [2,4)");
        Assert.Equal("request failed at step 0: no reply within --compute-timeout 5s", s.Worker("w2").Reason);
        // Its next heartbeat tells it to register again.
        s.Heartbeat("w2");
        s.Expect("answer heartbeat w2: unknown");
    }

    [Fact]
    public void AllWorkersGoneWithoutWaitingFailsTheStepWithOneLine()
    {
        var s = new ClusterScenario();
        s.Join(1);
        s.Request(0).Skip();
        s.Fail(0, 1, 0);
        s.Expect(
            "log: step 0: worker w1 failed (Unavailable: connection refused); its blocks go to the others",
            "disconnect w1#1",
            "log: step 0: no live worker is left to compute block [0, 4) (tried w1); starting the step over with the workers ready now",
            "fail step 0: step 0: no ready workers are left (w1 lost (request failed at step 0: Unavailable: connection refused)); " +
            "pass --wait-for-workers SECONDS to wait for them");
        Assert.Equal(RunState.Failed, s.Machine.View().Run);
    }

    [Fact]
    public void AllWorkersGoneWithWaitingSaysSoUntilOneReturnsThenContinues()
    {
        var s = new ClusterScenario(ClusterScenario.Options() with { WaitForWorkers = TimeSpan.FromSeconds(10) });
        s.Join(1);
        s.Request(0).Skip();
        s.Fail(0, 1, 0);
        s.Expect(
            "log: step 0: worker w1 failed (Unavailable: connection refused); its blocks go to the others",
            "disconnect w1#1",
            "log: step 0: no live worker is left to compute block [0, 4) (tried w1); starting the step over with the workers ready now",
            "log: step 0: waiting for workers — none ready; 10s left of --wait-for-workers 10s (w1 lost (request failed at step 0: Unavailable: connection refused))");
        Assert.Equal(RunState.WaitingForWorkers, s.Machine.View().Run);
        s.At(1.9).Expect();
        s.At(2);
        s.Expect("log: step 0: waiting for workers — none ready; 8s left of --wait-for-workers 10s (w1 lost (request failed at step 0: Unavailable: connection refused))");
        s.At(3).Step(new WorkerRegistering(A1, 1)).At(3.5).Step(new WorkerPrepared("w1", 2, false, "test"));
        s.Expect(
            $"log: worker w1 registered from {A1} with 1 thread(s)",
            $"answer register {A1}: w1#2",
            "prepare w1#2",
            $"log: worker w1 ({A1}, 1 thread(s)) rejoined and is ready during step 0 (which waits for workers: it gets work in it); test",
            "log: step 0: 1 worker(s) ready after waiting 3.5s; continuing",
            "begin step 0 attempt 2: 1 blocks",
            "send 0.2#0 to w1#2: [0,4)");
        s.Reply(0, 2, 0, Valid);
        s.Expect("keep 0.2#0 blocks 0", "complete step 0: w1[0,4)");
        Assert.Equal(RunState.Training, s.Machine.View().Run);
    }

    [Fact]
    public void AllWorkersGoneWithWaitingGivesUpWhenTheWaitRunsOut()
    {
        var s = new ClusterScenario(ClusterScenario.Options() with { WaitForWorkers = TimeSpan.FromSeconds(4) });
        s.Join(1);
        s.Request(0).Skip();
        s.At(3.5); // killed: silent past the heartbeat timeout, its request never answered
        s.Expect(
            $"log: worker w1 ({A1}) lost: no heartbeat for 3.5s",
            "log: step 0: worker w1 failed (lost: no heartbeat for 3.5s); its blocks go to the others",
            "cancel 0.1#0 (w1)",
            "disconnect w1#1",
            "log: step 0: no live worker is left to compute block [0, 4) (tried w1); starting the step over with the workers ready now",
            "log: step 0: waiting for workers — none ready; 4s left of --wait-for-workers 4s (w1 lost (no heartbeat for 3.5s))");
        s.At(5.5);
        s.Expect("log: step 0: waiting for workers — none ready; 2s left of --wait-for-workers 4s (w1 lost (no heartbeat for 3.5s))");
        s.At(7.5);
        s.Expect("fail step 0: step 0: no worker became ready within --wait-for-workers 4s (w1 lost (no heartbeat for 3.5s))");
        Assert.Equal(RunState.Failed, s.Machine.View().Run);
    }

    [Theory]
    [InlineData(BlockVerdict.NonFinite, "is non-finite; rejected, recomputing elsewhere")]
    [InlineData(BlockVerdict.Invalid, "is malformed; rejected, recomputing elsewhere")]
    public void ARejectedBlockIsRecomputedElsewhereAndCountsOneError(BlockVerdict verdict, string note)
    {
        var s = TwoWorkersInStepZero();
        s.Reply(0, 1, 0, verdict);
        s.Expect($"log: step 0: block [0, 2) from w1 {note}", "log: step 0: block [0, 2) reassigned to w2", "send 0.1#2 to w2#1: [0,2)");
        s.Reply(0, 1, 1, Valid).Reply(0, 1, 2, Valid);
        s.Expect("keep 0.1#1 blocks 1", "keep 0.1#2 blocks 0", "complete step 0: w2[0,2) w2[2,4)");
        Assert.Equal((1L, 0L), (s.Worker("w1").Errors, s.Worker("w2").Errors));
        Assert.Equal(WorkerState.Ready, s.Worker("w1").State); // a bad block does not cost the worker its place
    }

    [Fact]
    public void ANonFiniteBlockEveryWorkerAgreesOnIsAcceptedAsGenuineAndIsOneError()
    {
        var s = TwoWorkersInStepZero();
        s.Reply(0, 1, 1, Valid).Reply(0, 1, 0, NonFinite);
        s.Skip();
        s.Reply(0, 1, 2, NonFinite);
        s.Expect(
            "keep 0.1#2 blocks 0",
            "log: step 0: block [0, 2) is non-finite from w2 as well; accepted as genuine",
            "complete step 0: w2[0,2) w2[2,4)");
        Assert.Equal((1L, 0L), (s.Worker("w1").Errors, s.Worker("w2").Errors));
    }

    [Fact]
    public void ADuplicateReplyKeepsTheFirst()
    {
        var s = TwoWorkersInStepZero();
        s.Reply(0, 1, 0, Valid).Reply(0, 1, 0, Valid);
        s.Expect("keep 0.1#0 blocks 0");

        // In a pool, a block two members both computed (a broken claim counter) is taken from the first.
        var pool = new ClusterScenario(ClusterScenario.Options(expect: 2));
        pool.Join(1, sameHost: true);
        pool.Join(2, sameHost: true);
        pool.Request(0);
        pool.Expect(
            $"log: worker w1 registered from {A1} with 1 thread(s)", $"answer register {A1}: w1#1", "prepare w1#1",
            $"log: worker w1 ({A1}, 1 thread(s)) ready; test",
            $"log: worker w2 registered from {A2} with 1 thread(s)", $"answer register {A2}: w2#1", "prepare w2#1",
            $"log: worker w2 ({A2}, 1 thread(s)) ready; test",
            "begin step 0 attempt 1: 4 blocks, shared weights, pool",
            "send 0.1#0 to w1#1: [0,1) [1,2) [2,3) [3,4) pooled",
            "send 0.1#1 to w2#1: [0,1) [1,2) [2,3) [3,4) pooled");
        pool.Reply(0, 1, 0, Valid, Valid, Valid, Elsewhere).Reply(0, 1, 1, Valid, Elsewhere, Elsewhere, Valid);
        pool.Expect(
            "keep 0.1#0 blocks 0 1 2",
            "keep 0.1#1 blocks 3",
            "log: step 0: block [0, 1) came from w2 as well as w1; the second ignored",
            "complete step 0: w1[0,1) w1[1,2) w1[2,3) w2[3,4)");
        Assert.Equal((0L, 0L), (pool.Worker("w1").Errors, pool.Worker("w2").Errors));
    }

    [Fact]
    public void PoolBlocksClaimedByTheOtherMemberAreNoErrors()
    {
        var s = new ClusterScenario(ClusterScenario.Options(expect: 2));
        s.Join(1, sameHost: true);
        s.Join(2, sameHost: true);
        for (int step = 0; step < 3; step++)
        {
            s.Request(step).Skip();
            s.At(0.1 * step + 0.05).Reply(step, 1, 0, Valid, Elsewhere, Valid, Elsewhere).Reply(step, 1, 1, Elsewhere, Valid, Elsewhere, Valid);
            s.Expect($"keep {step}.1#0 blocks 0 2", $"keep {step}.1#1 blocks 1 3", $"complete step {step}: w1[0,1) w2[1,2) w1[2,3) w2[3,4)");
        }
        Assert.All(s.Machine.View().Workers, w => Assert.Equal((0L, 6L), (w.Errors, w.ShardsDone)));
    }

    [Fact]
    public void AStepIsGivenUpAfterTheAttemptLimit()
    {
        var s = new ClusterScenario(ClusterScenario.Options() with { MaxAttempts = 2 });
        s.Join(1);
        s.Request(0);
        s.Join(2); // ready during attempt 1: planned in attempt 2
        s.Skip();
        s.Fail(0, 1, 0);
        s.Expect(
            "log: step 0: worker w1 failed (Unavailable: connection refused); its blocks go to the others",
            "disconnect w1#1",
            "log: step 0: no live worker is left to compute block [0, 4) (tried w1); starting the step over with the workers ready now",
            "begin step 0 attempt 2: 1 blocks",
            "send 0.2#0 to w2#1: [0,4)");
        s.Fail(0, 2, 0, "Internal: worker crashed");
        s.Expect(
            "log: step 0: worker w2 failed (Internal: worker crashed); its blocks go to the others",
            "disconnect w2#1",
            "fail step 0: step 0: no live worker is left to compute block [0, 4) (tried w2); gave up after 2 attempts");
    }

    [Fact]
    public void AnAbandonedStepCancelsItsRequests()
    {
        var s = TwoWorkersInStepZero();
        s.Reply(0, 1, 0, Valid).Step(new StepAbandoned(0, "cancelled"));
        s.Expect("keep 0.1#0 blocks 0", "cancel 0.1#1 (w2)", "fail step 0: cancelled");
        Assert.Equal(RunState.Training, s.Machine.View().Run);
        s.Reply(0, 1, 1, Valid).Expect();
        s.Request(1).Skip();
    }
}
