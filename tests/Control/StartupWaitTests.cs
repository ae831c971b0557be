// The start-up wait on a fake clock: training starts when the expected workers are ready; with fewer, it settles for
// --min-workers once the wait times out or every expected worker has answered (a refusal counts), and otherwise fails
// with one line naming who is missing and why.
using DistTrain.Coordinator.Control;

namespace DistTrain.Tests.Control;

[Collection(ControlScenarios.Name)]
public class StartupWaitTests
{
    private static ControlOptions Options(int expect, int min) => ClusterScenario.Options(expect) with
    {
        MinWorkers = min, StartupTimeout = TimeSpan.FromSeconds(60), HeartbeatTimeout = TimeSpan.FromSeconds(1000),
    };

    [Fact]
    public void FewerWorkersThanExpectedTrainWithMinWorkersWhenTheWaitTimesOut()
    {
        var s = new ClusterScenario(Options(expect: 3, min: 2));
        s.Step(new TrainingRequested());
        s.At(1);
        s.Join(1);
        s.At(5);
        s.Join(2);
        s.Skip();
        Assert.Equal(RunState.WaitingForWorkers, s.Machine.View().Run);
        Assert.Equal("waiting for workers: 2 of 3 ready (59s of --wait-seconds 60)", s.At(59).Machine.View().Phase);
        s.Expect();
        s.At(60);
        s.Expect("log: 2 worker(s) ready after 60s; training with them", "start training with 2 worker(s)");
        Assert.Equal(RunState.Training, s.Machine.View().Run);
    }

    [Fact]
    public void TooFewWorkersWhenTheWaitTimesOutFailTheRunWithOneLine()
    {
        var s = new ClusterScenario(Options(expect: 3, min: 2));
        s.Step(new TrainingRequested());
        s.Join(1);
        s.Skip();
        s.At(60);
        s.Expect("fail run: only 1 of 3 worker(s) ready (need 2; waited 60s)");
        Assert.Equal(RunState.Failed, s.Machine.View().Run);
    }

    [Fact]
    public void ARefusalSettlesTheWaitAtOnce()
    {
        var s = new ClusterScenario(Options(expect: 3, min: 2));
        s.Step(new TrainingRequested());
        s.Join(1);
        s.Join(2);
        s.Step(new WorkerRegistering(ClusterScenario.Address(3), 1));
        s.Skip();
        s.At(2).Step(new WorkerRefused("w3", 1, "it built a model with 5 parameters, expected 7"));
        s.Expect(
            $"log: worker w3 ({ClusterScenario.Address(3)}) refused: it built a model with 5 parameters, expected 7",
            "disconnect w3#1",
            "log: 2 worker(s) ready; training",
            "start training with 2 worker(s)");

        // With --min-workers 3 the same refusal ends the wait with the reason.
        var strict = new ClusterScenario(Options(expect: 3, min: 3));
        strict.Step(new TrainingRequested());
        strict.Join(1);
        strict.Join(2);
        strict.Step(new WorkerRegistering(ClusterScenario.Address(3), 1));
        strict.Skip();
        strict.Step(new WorkerRefused("w3", 1, "FailedPrecondition: fingerprint mismatch"));
        strict.Expect(
            $"log: worker w3 ({ClusterScenario.Address(3)}) refused: FailedPrecondition: fingerprint mismatch",
            "disconnect w3#1",
            "fail run: only 2 of 3 worker(s) ready (need 3; every expected worker has answered) — w3 refused: FailedPrecondition: fingerprint mismatch");
    }

    [Fact]
    public void TheExpectedWorkersStartTrainingAsSoonAsTheyAreReady()
    {
        var s = new ClusterScenario(Options(expect: 2, min: 2));
        s.Join(1);
        s.Step(new WorkerRegistering(ClusterScenario.Address(2), 4));
        s.Skip();
        s.Step(new TrainingRequested());
        s.Expect();
        s.At(0.5).Step(new WorkerPrepared("w2", 1, true, "shared memory"));
        s.Expect(
            $"log: worker w2 ({ClusterScenario.Address(2)}, 4 thread(s)) ready; shared memory",
            "log: 2 worker(s) ready; training",
            "start training with 2 worker(s)");
        // Asking again (a second caller) is answered at once.
        s.Step(new TrainingRequested());
        s.Expect("start training with 2 worker(s)");
    }

    [Fact]
    public void AWorkerUnreachableWhilePreparingIsLostAndCountsAsMissing()
    {
        var s = new ClusterScenario(Options(expect: 1, min: 1));
        s.Step(new TrainingRequested());
        s.Step(new WorkerRegistering(ClusterScenario.Address(1), 1));
        s.Skip();
        s.Step(new WorkerUnreachable("w1", 1, "Unavailable: connection refused"));
        s.Expect(
            $"log: worker w1 ({ClusterScenario.Address(1)}) unreachable while preparing: Unavailable: connection refused",
            "disconnect w1#1");
        s.At(60);
        s.Expect("fail run: only 0 of 1 worker(s) ready (need 1; waited 60s)");
    }
}
