// The registry's rules on the control plane's state machine, replayed exactly: an address held by a live worker is
// refused to any other session (and the holder untouched), heartbeats must carry the holder's session, refusals never
// count as workers in the start-up wait, long-gone workers are forgotten, and --max-workers caps the records.
using DistTrain.Coordinator.Control;

namespace DistTrain.Tests.Control;

[Collection(ControlScenarios.Name)]
public class RegistryScenarioTests
{
    private static readonly string A1 = ClusterScenario.Address(1), A2 = ClusterScenario.Address(2);
    private const string Held = "w1 holds that address and is ready; a registration from another worker session waits until it is lost";

    [Fact]
    public void AnotherSessionCannotTakeALiveWorkersAddressUntilItIsLost()
    {
        var s = new ClusterScenario();
        s.Join(1);
        s.Step(new TrainingRequested()).Request(0);
        s.Skip();
        // Another session, or none at all: refused, the holder and its request untouched.
        s.Step(new WorkerRegistering(A1, 1, ClusterScenario.Session(1, life: 2)));
        s.Step(new WorkerRegistering(A1, 1));
        s.Expect(
            $"log: registration from {A1} refused: {Held}",
            $"refuse register {A1}: {Held}",
            $"log: registration from {A1} refused: {Held}",
            $"refuse register {A1}: {Held}");
        s.At(0.1).Reply(0, 1, 0, BlockVerdict.Valid);
        s.Expect("keep 0.1#0 blocks 0", "complete step 0: w1[0,4)");
        Assert.Equal((WorkerState.Ready, 1L), (s.Worker("w1").State, s.Worker("w1").Generation));

        // The same session registering again is the same worker: its next generation.
        s.Register(1);
        s.Expect($"disconnect w1#1", $"log: worker w1 registered from {A1} with 1 thread(s)", $"answer register {A1}: w1#2", "prepare w1#2");

        // Once it is lost (silent past the heartbeat timeout), a new process may take the address.
        s.At(3.5);
        s.Skip();
        s.Register(1, life: 2);
        s.Expect($"log: worker w1 registered from {A1} with 1 thread(s)", $"answer register {A1}: w1#3", "prepare w1#3");
    }

    [Fact]
    public void AHeartbeatFromAnotherSessionKeepsNoWorkerAliveAndIsLoggedOnce()
    {
        var s = new ClusterScenario();
        s.Join(1);
        s.Skip();
        s.At(1).Heartbeat("w1");
        s.At(2).Step(new HeartbeatReceived("w1", "run-a", ClusterScenario.Session(1, life: 2)));
        s.At(3).Step(new HeartbeatReceived("w1", "run-a"));
        s.Expect(
            "answer heartbeat w1: known",
            "log: worker w1 (http://10.0.0.1:5000/): a heartbeat from another session was ignored",
            "answer heartbeat w1: unknown",
            "answer heartbeat w1: unknown");
        // Only the real heartbeat (at 1 s) counted: lost 3 s after it.
        s.At(4.1);
        s.Expect($"log: worker w1 ({A1}) lost: no heartbeat for 3.1s", "disconnect w1#1");
    }

    [Fact]
    public void RefusedRegistrationsDoNotCountAsExpectedWorkers()
    {
        // Two expected, one enough: had a refusal counted as an expected worker that answered, training would start with w1.
        var s = new ClusterScenario(ClusterScenario.Options(expect: 2) with { MinWorkers = 1, MaxWorkers = 2 });
        s.Join(1);
        s.Step(new TrainingRequested());
        s.Skip();
        for (int i = 0; i < 500; i++) s.Step(new WorkerRegistering(A1, 1));
        Assert.Equal(1000, s.Commands.Count);
        Assert.All(s.Commands.Where((_, i) => i % 2 == 1), c => Assert.Equal($"refuse register {A1}: {Held}", c.ToString()));
        s.Skip();
        s.Register(2);
        s.Step(new WorkerRegistering(ClusterScenario.Address(3), 1));
        const string full = "the registry holds 2 live worker(s) (--max-workers)";
        s.Expect(
            $"log: worker w2 registered from {A2} with 1 thread(s)",
            $"answer register {A2}: w2#1",
            "prepare w2#1",
            $"log: registration from {ClusterScenario.Address(3)} refused: {full}; further ones are refused silently while it is full",
            $"refuse register {ClusterScenario.Address(3)}: {full}");
        Assert.Equal((RunState.WaitingForWorkers, 2), (s.Machine.View().Run, s.Machine.View().Workers.Count));
        s.At(1).Step(new WorkerPrepared("w2", 1, false, "test"));
        s.Expect(
            $"log: worker w2 ({A2}, 1 thread(s)) ready; test",
            "log: 2 worker(s) ready; training",
            "start training with 2 worker(s)");
    }

    [Fact]
    public void TheRegistryIsCappedAndLongGoneWorkersAreForgotten()
    {
        var s = new ClusterScenario(ClusterScenario.Options() with { MaxWorkers = 3, ForgetAfter = TimeSpan.FromSeconds(60) });
        s.Join(1);
        s.Register(2).Register(3);
        s.Skip();
        // Full of live workers: a new address is refused (logged once), a live worker registering again is served.
        s.Step(new WorkerRegistering(ClusterScenario.Address(4), 1)).Step(new WorkerRegistering(ClusterScenario.Address(5), 1));
        s.Register(2);
        const string full = "the registry holds 3 live worker(s) (--max-workers)";
        s.Expect(
            $"log: registration from {ClusterScenario.Address(4)} refused: {full}; further ones are refused silently while it is full",
            $"refuse register {ClusterScenario.Address(4)}: {full}",
            $"refuse register {ClusterScenario.Address(5)}: {full}",
            "disconnect w2#1",
            $"log: worker w2 registered from {A2} with 1 thread(s)",
            $"answer register {A2}: w2#2",
            "prepare w2#2");
        // w3 never gets prepared: unreachable, it is lost; a new address takes its place, with a new id.
        s.Step(new WorkerUnreachable("w3", 1, "Unavailable: connection refused"));
        s.Skip();
        s.Step(new WorkerRegistering(ClusterScenario.Address(4), 1));
        s.Expect($"log: worker w4 registered from {ClusterScenario.Address(4)} with 1 thread(s)",
            $"answer register {ClusterScenario.Address(4)}: w4#1", "prepare w4#1");
        Assert.Equal(["w1", "w2", "w4"], s.Machine.View().Workers.Select(w => w.Id));

        // w4 is refused by its Prepare, w1 and w2 go silent; 60 s after their last word, all three are forgotten.
        s.Step(new WorkerRefused("w4", 1, "another model"));
        s.At(3.5);
        s.Skip();
        s.At(60);
        s.Expect();
        s.At(60.5);
        s.Expect(
            $"log: worker w1 ({A1}) forgotten: lost and silent for 60s",
            $"log: worker w2 ({A2}) forgotten: lost and silent for 60s",
            $"log: worker w4 ({ClusterScenario.Address(4)}) forgotten: refused and silent for 60s");
        Assert.Empty(s.Machine.View().Workers);
    }
}
