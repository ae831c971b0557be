// The communication-bound notice on synthetic step timings: nothing during the warm-up or before a full window, the
// notice exactly once when the median step spends more than half its time outside the slowest worker's compute (with
// the measured split in it), never for a compute-bound run or one whose outliers alone are slow, and the advice
// leaves out --wire bf16 when the run already uses it.
using DistTrain.Coordinator.Control;

namespace DistTrain.Tests.Control;

public class CommunicationMonitorTests
{
    private static List<string> Run(CommunicationMonitor monitor, int steps, Func<int, (double Step, double Compute)> timing)
    {
        var notices = new List<string>();
        for (int i = 0; i < steps; i++)
        {
            var (step, compute) = timing(i);
            if (monitor.Observe(step, compute) is { } notice) notices.Add($"{i}: {notice}");
        }
        return notices;
    }

    [Fact]
    public void ACommunicationBoundRunIsToldOnceAfterTheWarmupAndAFullWindow()
    {
        // 6 ms steps of which the slowest worker computed 1.5 ms: 75% outside compute.
        var notices = Run(new CommunicationMonitor(), 500, _ => (0.006, 0.0015));
        var notice = Assert.Single(notices);
        Assert.StartsWith($"{CommunicationMonitor.WarmupSteps + CommunicationMonitor.Window - 1}: communication-bound", notice);
        Assert.Contains("computed a median 1.50 ms of a 6.00 ms step; 75% of the step is spent outside compute", notice);
        Assert.Contains("--wire bf16", notice);
    }

    [Fact]
    public void AComputeBoundRunIsNeverTold()
    {
        // 30 ms steps, 27 ms of compute; every fifth step stalls to 100 ms: the median is what counts.
        Assert.Empty(Run(new CommunicationMonitor(), 1000, i => i % 5 == 0 ? (0.100, 0.027) : (0.030, 0.027)));
        // Exactly at the threshold is not above it.
        Assert.Empty(Run(new CommunicationMonitor(), 1000, _ => (0.010, 0.005)));
    }

    [Fact]
    public void ASlowWarmupIsNotJudgedAndTheWindowMovesOn()
    {
        // Slow first steps (JIT, connections), then compute-bound for a while, then the wire dominates.
        var notices = Run(new CommunicationMonitor(), 400, i => i < 20 ? (0.5, 0.001) : i < 200 ? (0.010, 0.009) : (0.010, 0.002));
        var notice = Assert.Single(notices);
        int at = int.Parse(notice[..notice.IndexOf(':')]);
        Assert.InRange(at, 200 + CommunicationMonitor.Window / 2 - 1, 200 + CommunicationMonitor.Window);
    }

    [Fact]
    public void TheAdviceOfABf16RunLeavesOutBf16AndBadTimingsAreIgnored()
    {
        var monitor = new CommunicationMonitor(bf16: true);
        Assert.Null(monitor.Observe(double.NaN, 0.001));
        Assert.Null(monitor.Observe(0, 0.001));
        Assert.Null(monitor.Observe(-1, 0.001));
        var notice = Assert.Single(Run(monitor, 200, i => (0.004, i % 2 == 0 ? double.NaN : 0.001)));
        Assert.DoesNotContain("--wire bf16", notice);
        Assert.Contains("a larger batch", notice);
    }
}
