// What the machine measures or bounds itself, replayed on a fake clock: a worker's reported compute times cannot buy
// it a larger share than its measured round trips earn, a worker whose blocks are rejected step after step is
// refused, and a block whose gradient norm is out of line with its step's is logged.
using DistTrain.Coordinator.Control;

namespace DistTrain.Tests.Control;

[Collection(ControlScenarios.Name)]
public class MeasuredScenarioTests
{
    private const BlockVerdict Valid = BlockVerdict.Valid, Invalid = BlockVerdict.Invalid;

    /// <summary>
    /// Runs step <paramref name="step"/>: the requests out are all answered 10 ms later, by <paramref name="bad"/> with
    /// every block Invalid and by the others Valid, with the compute times <paramref name="report"/> gives for its worker
    /// and the gradient norm <paramref name="norm"/> gives.
    /// </summary>
    private static void RunStep(ClusterScenario s, long step, string? bad, Func<string, (double Compute, double Cpu)>? report = null,
        Func<string, double>? norm = null)
    {
        s.Request(step);
        int answered = 0;
        while (s.Commands.OfType<SendRequest>().Skip(answered).ToList() is { Count: > 0 } round)
        {
            answered += round.Count;
            s.At(s.Now.TotalSeconds + 0.01);
            foreach (var send in round)
            {
                var (compute, cpu) = report?.Invoke(send.WorkerId) ?? (0, 0);
                var verdict = send.WorkerId == bad ? Invalid : Valid;
                s.Step(new ReplyReceived(send.Step, send.Attempt, send.Dispatch, [.. send.Blocks.Select(_ => verdict)], compute, cpu,
                    norm is null ? null : [.. send.Blocks.Select(_ => norm(send.WorkerId))]));
            }
        }
    }

    [Fact]
    public void AWorkerWithBlocksRejectedInThreeConsecutiveStepsIsRefusedAndItsBlocksGoElsewhere()
    {
        var s = new ClusterScenario(ClusterScenario.Options(expect: 2));
        s.Join(1);
        s.Join(2);
        // One bad step, then a good one: the count starts over.
        RunStep(s, 0, bad: "w2");
        RunStep(s, 1, bad: null);
        RunStep(s, 2, bad: "w2");
        RunStep(s, 3, bad: "w2");
        s.Skip();
        Assert.Equal(WorkerState.Ready, s.Worker("w2").State);
        RunStep(s, 4, bad: "w2");
        s.Expect(
            "begin step 4 attempt 1: 2 blocks",
            "send 4.1#0 to w1#1: [0,2)",
            "send 4.1#1 to w2#1: [2,4)",
            "keep 4.1#0 blocks 0",
            $"log: worker w2 ({ClusterScenario.Address(2)}) refused: its blocks were rejected in 3 consecutive steps",
            "disconnect w2#1",
            "log: step 4: block [2, 4) from w2 is malformed; rejected, recomputing elsewhere",
            "log: step 4: block [2, 4) reassigned to w1",
            "send 4.1#2 to w1#1: [2,4)",
            "keep 4.1#2 blocks 1",
            "complete step 4: w1[0,2) w1[2,4)");
        Assert.Equal(WorkerState.Refused, s.Worker("w2").State);
        Assert.Equal("its blocks were rejected in 3 consecutive steps", s.Worker("w2").Reason);
        // It stays out (its heartbeats are still answered, so it does not register again); w1 computes every block.
        s.Heartbeat("w2");
        s.Expect("answer heartbeat w2: known");
        RunStep(s, 5, bad: null);
        s.Expect("begin step 5 attempt 1: 1 blocks", "send 5.1#0 to w1#1: [0,4)", "keep 5.1#0 blocks 0", "complete step 5: w1[0,4)");
        Assert.Equal(4, s.Worker("w2").Errors);
    }

    [Fact]
    public void ReportedComputeTimesCannotBuyALargerShareThanTheMeasuredRoundTrip()
    {
        // Both answer in 10 ms. w1 reports its compute as all of the round trip and a millionth of that in CPU — believed,
        // it would count as 10⁶× faster and take nearly every shard; w2 reports honestly (no time waiting for a core).
        var s = new ClusterScenario(ClusterScenario.Options(expect: 2));
        s.Join(1);
        s.Join(2);
        for (int step = 0; step < 6; step++)
            RunStep(s, step, bad: null, w => w == "w1" ? (0.01, 0.01e-6) : (0.008, 0.008));
        s.Skip();
        RunStep(s, 6, bad: null, w => w == "w1" ? (0.01, 0.01e-6) : (0.008, 0.008));
        s.Expect(
            "begin step 6 attempt 1: 2 blocks",
            "send 6.1#0 to w1#1: [0,2)",
            "send 6.1#1 to w2#1: [2,4)",
            "keep 6.1#0 blocks 0",
            "keep 6.1#1 blocks 1",
            "complete step 6: w1[0,2) w2[2,4)");
        Assert.Equal(s.Worker("w2").SamplesPerSecond, s.Worker("w1").SamplesPerSecond);
    }

    [Fact]
    public void ABlockWhoseGradientNormIsOutOfLineIsLoggedNotRejected()
    {
        var s = new ClusterScenario(ClusterScenario.Options(expect: 3) with { GradientOutlierFactor = 10 });
        s.Join(1);
        s.Join(2);
        s.Join(3);
        s.Skip();
        RunStep(s, 0, bad: null, norm: w => w == "w3" ? 3e38 : 2);
        s.Expect(
            "begin step 0 attempt 1: 3 blocks",
            "send 0.1#0 to w1#1: [0,2)",
            "send 0.1#1 to w2#1: [2,3)",
            "send 0.1#2 to w3#1: [3,4)",
            "keep 0.1#0 blocks 0",
            "keep 0.1#1 blocks 1",
            "keep 0.1#2 blocks 2",
            "log: step 0: block [3, 4) from w3 has gradient norm 3E+38 (3E+38 per shard), above 10× the step's median block norm per shard 2; kept",
            "complete step 0: w1[0,2) w2[2,3) w3[3,4)");
    }

    [Theory]
    // wall, reported compute, reported CPU → seconds counted
    [InlineData(1.0, 0.5, 0.5, 1.0)]          // no waiting: the round trip
    [InlineData(1.0, 0.8, 0.2, 0.4)]          // waited 0.6 s for a core: credited
    [InlineData(1.0, 2.0, 0.5, 0.5)]          // compute longer than the round trip it was part of: the round trip
    [InlineData(1.0, 2.0, 0.1, 1.0)]          // ... and a CPU time beyond the credit limit
    [InlineData(1.0, 0.9, 0.9e-6, 1.0)]       // 10⁶× faster in CPU than its compute: beyond the credit limit
    [InlineData(1.0, 0.9e-6, 0.9e-6, 1.0)]    // 10⁶× faster in both: nothing to credit
    [InlineData(4.0, 1.0, 0.1, 4.0)]          // a transfer-heavy round trip: under 1/8 of a core while computing is not believed
    [InlineData(1.0, 0.1, 0.5, 1.4)]          // slower than measured: its own cost
    [InlineData(1.0, double.NaN, 0.5, 1.0)]
    [InlineData(1.0, 0.5, double.PositiveInfinity, 1.0)]
    public void SecondsForSpeedAreBoundedByTheMeasuredRoundTrip(double wall, double compute, double cpu, double expected) =>
        Assert.Equal(expected, MeasuredSpeed.Seconds(wall, compute, cpu, creditLimit: 8), 12);
}
