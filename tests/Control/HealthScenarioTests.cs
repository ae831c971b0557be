// Stragglers and hangs named by the machine from its own timestamps, on a fake clock: a worker whose requests stay
// slower than twice its peers' is a straggler (one slow step is not), a worker that has not answered for twice the
// median step time is hung — whether the step waits for it or a pool finishes every step without it — and both are
// in the view and the log once, with what the worker was asked.
using DistTrain.Coordinator.Control;

namespace DistTrain.Tests.Control;

[Collection(ControlScenarios.Name)]
public class HealthScenarioTests
{
    private const BlockVerdict Valid = BlockVerdict.Valid, Elsewhere = BlockVerdict.Elsewhere;

    private static ControlOptions Options(int expect) =>
        ClusterScenario.Options(expect) with { HeartbeatTimeout = TimeSpan.FromSeconds(1000) };

    private static List<string> Lines(ClusterScenario s, string part) =>
        s.Commands.OfType<LogLine>().Select(l => l.Message).Where(m => m.Contains(part, StringComparison.Ordinal)).ToList();

    [Fact]
    public void AWorkerSlowerThanTwiceItsPeersOverItsRecentStepsIsAStraggler()
    {
        var s = new ClusterScenario(Options(expect: 3));
        for (int n = 1; n <= 3; n++) s.Join(n);
        // One slow step is an accident, not a name.
        s.RunStep(0, w => w == "w3" ? 0.5 : 0.05);
        for (int step = 1; step < 8; step++) s.RunStep(step, _ => 0.05);
        s.At(s.Now.TotalSeconds + 0.001);
        Assert.Empty(Lines(s, "straggler"));
        Assert.All(s.Machine.View().Workers, w => Assert.Equal(WorkerHealth.Ok, w.Health));
        s.Skip();

        // Slow from step 8: half of its window slow is not yet "stays slow"; most of it is.
        for (int step = 8; step < 12; step++) s.RunStep(step, w => w == "w3" ? 0.12 : 0.05);
        s.At(s.Now.TotalSeconds + 0.001);
        Assert.Empty(Lines(s, "straggler"));
        s.Skip();
        s.RunStep(12, w => w == "w3" ? 0.12 : 0.05);
        s.Skip();
        s.At(s.Now.TotalSeconds + 0.001);
        s.Expect("log: worker w3 is a straggler: median request 120 ms over its last 8 vs. 50 ms for its peers (2.4×)");
        var w3 = s.Worker("w3");
        Assert.Equal((WorkerHealth.Straggler, 0.12), (w3.Health, Math.Round(w3.RecentLatencySeconds, 3)));
        Assert.Contains("2.4×", w3.HealthDetail);
        for (int step = 13; step < 16; step++) s.RunStep(step, w => w == "w3" ? 0.12 : 0.05);
        Assert.Empty(Lines(s, "straggler")); // named once

        // Fast again for most of its window: no longer named.
        for (int step = 16; step < 21; step++) s.RunStep(step, _ => 0.05);
        s.At(s.Now.TotalSeconds + 0.001);
        Assert.Equal(["worker w3 is no longer a straggler"], Lines(s, "straggler"));
        Assert.Equal(WorkerHealth.Ok, s.Worker("w3").Health);
    }

    [Fact]
    public void AWorkerTheStepWaitsForIsHungAfterTwiceTheMedianStepAndAnswersAgain()
    {
        var s = new ClusterScenario(Options(expect: 2) with { HungMinimum = TimeSpan.FromMilliseconds(50) });
        s.Join(1);
        s.Join(2);
        for (int step = 0; step < 3; step++) s.RunStep(step, _ => 0.01);
        s.Skip();
        double start = s.Now.TotalSeconds;
        s.RunStep(3, w => w == "w1" ? 0.01 : null); // w2 stops answering
        s.At(start + 0.045);
        s.Expect("begin step 3 attempt 1: 2 blocks", "send 3.1#0 to w1#1: [0,2)", "send 3.1#1 to w2#1: [2,4)", "keep 3.1#0 blocks 0");
        s.At(start + 0.06);
        s.Expect("log: worker w2 is hung: no answer for 60 ms (limit 50 ms, median step 10 ms); waiting for its reply to step 3, attempt 1, blocks [2,4)");
        Assert.Equal((WorkerState.Ready, WorkerHealth.Hung), (s.Worker("w2").State, s.Worker("w2").Health));
        Assert.Contains("step 3, attempt 1, blocks [2,4)", s.Worker("w2").HealthDetail);
        s.At(start + 0.5).Expect(); // named once
        s.Reply(3, 1, 1, Valid).At(start + 0.501);
        s.Expect("keep 3.1#1 blocks 1", "complete step 3: w1[0,2) w2[2,4)", "log: worker w2 answers again");
        Assert.Equal(WorkerHealth.Ok, s.Worker("w2").Health);
    }

    [Fact]
    public void HangIsNamedLongBeforeHeartbeatsRunOut()
    {
        var s = new ClusterScenario(ClusterScenario.Options(expect: 2) with { HeartbeatTimeout = TimeSpan.FromSeconds(10) });
        s.Join(1);
        s.Join(2);
        for (int step = 0; step < 3; step++) s.RunStep(step, _ => 0.01);
        s.RunStep(3, w => w == "w1" ? 0.01 : null); // stopped: no answers, no heartbeats
        s.Skip();
        double stopped = s.Now.TotalSeconds - 0.01;
        for (int tenth = 0; tenth <= 101; tenth++)
        {
            s.At(stopped + 0.05 + tenth / 10.0);
            if (tenth % 10 == 0) s.Heartbeat("w1");
        }
        var hung = Lines(s, "w2 is hung");
        Assert.Equal(["worker w2 is hung: no answer for 550 ms (limit 500 ms, median step 10 ms); waiting for its reply to step 3, attempt 1, blocks [2,4)"], hung);
        Assert.Single(Lines(s, "w2 (http"), l => l.Contains("lost: no heartbeat for 10.", StringComparison.Ordinal));
        var messages = s.Commands.OfType<LogLine>().Select(l => l.Message).ToList();
        Assert.True(messages.IndexOf(hung[0]) < messages.FindIndex(m => m.Contains("lost:", StringComparison.Ordinal)));
        Assert.Equal(WorkerHealth.Ok, s.Worker("w2").Health); // lost is a state, not a health
    }

    [Fact]
    public void APoolMemberThatStoppedIsHungThoughEveryStepCompletesWithoutIt()
    {
        // A limit a little above 0.5 s: the ticks fall every 10 ms, never on it.
        var s = new ClusterScenario(Options(expect: 2) with { HungMinimum = TimeSpan.FromMilliseconds(505) });
        s.Join(1, sameHost: true);
        s.Join(2, sameHost: true);
        for (int step = 0; step < 2; step++)
        {
            s.Request(step).At(0.01 * step + 0.01);
            s.Reply(step, 1, 0, Valid, Elsewhere, Valid, Elsewhere).Reply(step, 1, 1, Elsewhere, Valid, Elsewhere, Valid);
        }
        s.Skip();
        // w2 is stopped from step 2: w1 claims every block, each step completes and gives up on w2's request.
        int named = -1;
        for (int step = 2; step < 80 && named < 0; step++)
        {
            s.Request(step).At(0.01 * step + 0.01);
            if (Lines(s, "is hung").Count > 0)
            {
                named = step;
                Assert.Equal(["worker w2 is hung: no answer for 510 ms (limit 505 ms, median step 10 ms); waiting for its reply to step 52, attempt 1, blocks [0,1) [1,2) [2,3) [3,4) (pool)"],
                    Lines(s, "is hung"));
            }
            s.Skip();
            s.Reply(step, 1, 0, Valid, Valid, Valid, Valid);
            s.Expect($"keep {step}.1#0 blocks 0 1 2 3", $"cancel {step}.1#1 (w2)", $"complete step {step}: w1[0,1) w1[1,2) w1[2,3) w1[3,4)");
        }
        Assert.Equal(52, named);
        Assert.Equal(0, s.Worker("w2").Errors); // passed over is not an error
    }

    [Fact]
    public void APauseBetweenStepsAfterALatePoolMemberIsNoHang()
    {
        var s = new ClusterScenario(Options(expect: 2));
        s.Join(1, sameHost: true);
        s.Join(2, sameHost: true);
        for (int step = 0; step < 3; step++)
        {
            s.Request(step).At(0.01 * step + 0.01);
            s.Reply(step, 1, 0, Valid, Elsewhere, Valid, Elsewhere).Reply(step, 1, 1, Elsewhere, Valid, Elsewhere, Valid);
        }
        // w2 is a moment late in step 3 (w1 took every block), then the trainer evaluates for two seconds.
        s.Request(3).At(0.04).Reply(3, 1, 0, Valid, Valid, Valid, Valid);
        s.At(2.04).Request(4).At(2.05);
        Assert.Empty(Lines(s, "is hung"));
        Assert.All(s.Machine.View().Workers, w => Assert.Equal(WorkerHealth.Ok, w.Health));
    }

    [Fact]
    public void TheRulesInNumbers()
    {
        var options = new ControlOptions();
        double[] slow = [.. Enumerable.Repeat(0.15, 8)], fast = [.. Enumerable.Repeat(0.05, 8)];
        Assert.NotNull(HealthRules.Straggler(slow, fast, options));
        Assert.Null(HealthRules.Straggler(slow[..7], fast, options)); // not a full window yet
        Assert.Null(HealthRules.Straggler([.. Enumerable.Repeat(0.1, 8)], fast, options)); // exactly 2× is not above
        Assert.Null(HealthRules.Straggler([.. Enumerable.Repeat(0.009, 8)], [.. Enumerable.Repeat(0.001, 8)], options)); // jitter
        Assert.Null(HealthRules.Straggler(slow, [], options)); // no peers, no comparison
        Assert.Equal(0.1, HealthRules.Median([0.3, 0.1, 0.05]));
        Assert.Equal(0.2, HealthRules.Median([0.3, 0.1]), 12);
        Assert.True(double.IsNaN(HealthRules.Median([])));
    }
}
