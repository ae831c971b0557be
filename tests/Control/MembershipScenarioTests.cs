// Membership on the control plane's state machine, replayed exactly: a worker lost mid-step that rejoins with the same
// id as its next generation, late messages of an earlier life ignored, joining only at a step boundary, silence found
// by ticks, and a coordinator restart (a fresh machine) that workers register with anew.
using DistTrain.Coordinator.Control;

namespace DistTrain.Tests.Control;

[Collection(ControlScenarios.Name)]
public class MembershipScenarioTests
{
    private static readonly string A1 = ClusterScenario.Address(1), A2 = ClusterScenario.Address(2);

    [Fact]
    public void WorkerLostMidStepRejoinsWithItsIdAsTheNextGenerationAndGetsWorkFromTheNextStep()
    {
        var s = new ClusterScenario(ClusterScenario.Options(expect: 2));
        s.Join(1);
        s.Join(2);
        s.Step(new TrainingRequested());
        s.Expect(
            $"log: worker w1 registered from {A1} with 1 thread(s)",
            $"answer register {A1}: w1#1",
            "prepare w1#1",
            $"log: worker w1 ({A1}, 1 thread(s)) ready; test",
            $"log: worker w2 registered from {A2} with 1 thread(s)",
            $"answer register {A2}: w2#1",
            "prepare w2#1",
            $"log: worker w2 ({A2}, 1 thread(s)) ready; test",
            "log: 2 worker(s) ready; training",
            "start training with 2 worker(s)");

        s.Request(0);
        s.Expect("begin step 0 attempt 1: 2 blocks", "send 0.1#0 to w1#1: [0,2)", "send 0.1#1 to w2#1: [2,4)");
        s.At(0.1).Reply(0, 1, 0, BlockVerdict.Valid);
        s.Expect("keep 0.1#0 blocks 0");
        // w2's process dies mid-step: its request fails, its block goes to w1.
        s.Fail(0, 1, 1);
        s.Expect(
            "log: step 0: worker w2 failed (Unavailable: connection refused); its blocks go to the others",
            "disconnect w2#1",
            "log: step 0: block [2, 4) reassigned to w1",
            "send 0.1#2 to w1#1: [2,4)");
        s.At(0.2).Reply(0, 1, 2, BlockVerdict.Valid);
        s.Expect("keep 0.1#2 blocks 1", "complete step 0: w1[0,2) w1[2,4)");
        Assert.Equal((WorkerState.Lost, 1L), (s.Worker("w2").State, s.Worker("w2").Errors));

        // Restarted at the same address: told it is unknown, it registers again and keeps its id.
        s.Heartbeat("w2");
        s.Register(2, life: 2);
        s.Expect(
            "answer heartbeat w2: unknown",
            $"log: worker w2 registered from {A2} with 1 thread(s)",
            $"answer register {A2}: w2#2",
            "prepare w2#2");
        Assert.Equal(WorkerState.Rejoining, s.Worker("w2").State);
        Assert.StartsWith("back after: request failed at step 0", s.Worker("w2").Reason);
        // Not planned until prepared again; ready during step 1, it gets work from step 2.
        s.Request(1);
        s.Step(new WorkerPrepared("w2", 2, false, "test"));
        s.Expect(
            "begin step 1 attempt 1: 1 blocks",
            "send 1.1#0 to w1#1: [0,4)",
            $"log: worker w2 ({A2}, 1 thread(s)) rejoined and is ready during step 1 (gets work from step 2); test");
        s.At(0.3).Reply(1, 1, 0, BlockVerdict.Valid);
        s.Request(2);
        s.Expect(
            "keep 1.1#0 blocks 0",
            "complete step 1: w1[0,4)",
            "begin step 2 attempt 1: 2 blocks",
            "send 2.1#0 to w1#1: [0,2)",
            "send 2.1#1 to w2#2: [2,4)");
        Assert.Equal((2L, 1), (s.Worker("w2").Generation, s.Worker("w2").Rejoins));
    }

    [Fact]
    public void RepliesFailuresAndPreparationsOfAnEarlierLifeAreIgnored()
    {
        var s = new ClusterScenario();
        s.Join(1);
        s.Request(0);
        s.Skip();
        // The worker restarted and registered again while its request to the old process was in flight: that request
        // is given up (its blocks wait for the new life), and what the old process says later changes nothing.
        s.Register(1);
        s.Expect(
            "log: step 0: worker w1 failed (registered again (restarted)); its blocks go to the others",
            "cancel 0.1#0 (w1)",
            "log: step 0: no live worker is left to compute block [0, 4) (tried w1); starting the step over with the workers ready now",
            "fail step 0: step 0: no ready workers are left (w1 rejoining (registered again (restarted))); pass --wait-for-workers SECONDS to wait for them",
            "disconnect w1#1",
            $"log: worker w1 registered from {A1} with 1 thread(s)",
            $"answer register {A1}: w1#2",
            "prepare w1#2");
        s.Fail(0, 1, 0, "Unavailable: the old process exited");
        s.Reply(0, 1, 0, BlockVerdict.Valid);
        s.Step(new WorkerPrepared("w1", 1, false, "late"));
        s.Expect("disconnect w1#1");
        s.Step(new WorkerPrepared("w1", 2, false, "test"));
        s.Expect($"log: worker w1 ({A1}, 1 thread(s)) rejoined and is ready during step 0 (gets work from step 1); test");
        Assert.Equal((WorkerState.Ready, 2L), (s.Worker("w1").State, s.Worker("w1").Generation));
    }

    [Fact]
    public void AWorkerReadyDuringStepKIsPlannedFromStepKPlusOne()
    {
        var s = new ClusterScenario();
        s.Join(1);
        s.Request(4);
        s.Skip();
        s.Join(2);
        Assert.Equal($"log: worker w2 ({A2}, 1 thread(s)) ready during step 4 (gets work from step 5); test", s.Commands[^1].ToString());
        s.Skip();
        s.At(0.1).Reply(4, 1, 0, BlockVerdict.Valid).Request(5);
        s.Expect(
            "keep 4.1#0 blocks 0",
            "complete step 4: w1[0,4)",
            "begin step 5 attempt 1: 2 blocks",
            "send 5.1#0 to w1#1: [0,2)",
            "send 5.1#1 to w2#1: [2,4)");
    }

    [Fact]
    public void SilenceLosesAWorkerOnTheTickPastTheTimeoutAndAnotherAddressIsANewWorker()
    {
        var s = new ClusterScenario();
        s.Join(1);
        s.Join(2);
        s.Skip();
        s.At(2).Heartbeat("w2").At(3);
        s.Expect("answer heartbeat w2: known");
        s.At(3.5); // w1 silent for 3.5 s
        s.Expect($"log: worker w1 ({A1}) lost: no heartbeat for 3.5s", "disconnect w1#1");
        s.Step(new WorkerRegistering(ClusterScenario.Address(3), 2));
        s.Expect(
            $"log: worker w3 registered from {ClusterScenario.Address(3)} with 2 thread(s)",
            $"answer register {ClusterScenario.Address(3)}: w3#1",
            "prepare w3#1");
        Assert.Equal([WorkerState.Lost, WorkerState.Ready, WorkerState.Preparing], s.Machine.View().Workers.Select(w => w.State));
        // Lost is lost: a heartbeat does not bring it back, a registration does.
        s.Heartbeat("w1");
        s.Expect("answer heartbeat w1: unknown");
    }

    [Fact]
    public void AfterACoordinatorRestartOldIdsAreUnknownAndWorkersRegisterAnew()
    {
        var before = new ClusterScenario(ClusterScenario.Options(expect: 2), run: "run-a");
        before.Join(1);
        before.Join(2);
        before.Step(new TrainingRequested()).Request(0);
        before.Skip();

        // The coordinator was killed; a fresh machine (another run id) starts and resumes at step 120 (the trainer's
        // checkpoint). Heartbeats with the ids of the old run are refused, so the workers register again — in whatever
        // order they notice: ids start at w1 again, in the new order.
        var after = new ClusterScenario(ClusterScenario.Options(expect: 2), run: "run-b");
        after.Step(new TrainingRequested());
        after.Heartbeat("w2", run: "run-a").Heartbeat("w1", run: "run-a");
        after.Expect("answer heartbeat w2: unknown", "answer heartbeat w1: unknown");
        after.Join(2);
        after.Heartbeat("w1", run: "run-b"); // the new w1 (at address 2)
        after.Join(1);
        after.Expect(
            $"log: worker w1 registered from {A2} with 1 thread(s)",
            $"answer register {A2}: w1#1",
            "prepare w1#1",
            $"log: worker w1 ({A2}, 1 thread(s)) ready; test",
            "answer heartbeat w1: known",
            $"log: worker w2 registered from {A1} with 1 thread(s)",
            $"answer register {A1}: w2#1",
            "prepare w2#1",
            $"log: worker w2 ({A1}, 1 thread(s)) ready; test",
            "log: 2 worker(s) ready; training",
            "start training with 2 worker(s)");
        after.Request(120);
        after.Expect("begin step 120 attempt 1: 2 blocks", "send 120.1#0 to w1#1: [0,2)", "send 120.1#1 to w2#1: [2,4)");
    }

    [Fact]
    public void TheRunsEndIsInTheHeartbeatAnswerAndTheView()
    {
        var s = new ClusterScenario();
        s.Join(1);
        s.Step(new TrainingRequested()).Skip();
        Assert.Equal(RunState.Training, s.Machine.View().Run);
        s.Step(new RunEnded(Completed: true));
        s.Heartbeat("w1");
        var answer = Assert.IsType<HeartbeatAnswer>(Assert.Single(s.Commands));
        Assert.Equal((true, RunState.Finished), (answer.Known, answer.Run));
        Assert.Equal(RunState.Finished, s.Machine.View().Run);
        s.Request(7);
        s.Expect("answer heartbeat w1: known", "fail step 7: step 7: the run has ended");
    }
}
