// The time a reply counts as for a worker's speed, bounded by what the coordinator measured itself: the round trip
// from its send to the reply, on its own monotonic clock. A worker's reported compute times can shorten that by at most
// ControlOptions.CpuCreditLimit, so a false report cannot buy it a larger share of the batch than it earns.
namespace DistTrain.Coordinator.Control;

internal static class MeasuredSpeed
{
    /// <summary>
    /// Seconds for speed: the measured round trip <paramref name="wall"/> with the reported compute wall time
    /// <paramref name="compute"/> counted as the CPU time it used, <paramref name="cpu"/> (a worker that waited for a
    /// core another process held is not mistaken for a slow one, while transfer time still counts) — that is,
    /// wall − compute + cpu. The reports are believed only within what the measurement allows, else the result is the
    /// measured wall time itself:
    /// <list type="bullet">
    /// <item>compute and cpu finite and above zero; a compute longer than the round trip it was part of is replaced by
    /// the round trip (a CPU time above the compute time makes the worker count slower: a report only it pays for);</item>
    /// <item>cpu ≥ compute / <paramref name="creditLimit"/>, and the result ≥ wall / <paramref name="creditLimit"/>: the time a worker claims it waited for a core is the one
    /// part of the round trip the coordinator cannot check, so it is credited up to that factor; a claim beyond it is
    /// not a busy host but a false report, and none of it is believed. A worker reporting itself 10⁶× faster than it is therefore counts as exactly as fast as the
    /// coordinator measured it, the same as an honest peer of its speed.</item>
    /// </list>
    /// </summary>
    public static double Seconds(double wall, double compute, double cpu, double creditLimit)
    {
        if (!(wall > 0)) return wall;
        if (!double.IsFinite(compute) || !double.IsFinite(cpu) || !(compute > 0) || !(cpu > 0)) return wall;
        // The waiting a worker claims (compute − cpu) is bounded the same way: a CPU time below compute / limit says it
        // had less than that share of a core, which the coordinator cannot tell from a false report.
        if (cpu < Math.Min(wall, compute) / creditLimit) return wall;
        double credited = wall - Math.Min(wall, compute) + cpu;
        return credited < wall / creditLimit ? wall : credited;
    }
}
