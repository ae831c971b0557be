// Blocks of one step whose gradient is wildly out of line with the others': logged so a worker sending huge but
// finite sums (which pass every check) is seen, never rejected — a rare hard example is genuine. Pure, so the rule is
// tested with numbers.
using System.Globalization;

namespace DistTrain.Coordinator.Control;

internal static class GradientOutliers
{
    /// <summary>
    /// A line per block whose norm per shard exceeds <paramref name="factor"/> × the step's median block norm per
    /// shard. Per shard, because a block's sum grows with the shards in it and blocks of one step differ in size.
    /// Judged only with three blocks or more: with two, neither is the odd one out.
    /// </summary>
    public static IEnumerable<string> Describe(long step, IReadOnlyList<(int FirstShard, int ShardCount, string Executor, double Norm)> blocks,
        double factor)
    {
        var measured = blocks.Where(b => !double.IsNaN(b.Norm)).ToList();
        if (!(factor > 0) || measured.Count < 3) yield break;
        double median = HealthRules.Median(measured.Select(b => b.Norm / b.ShardCount).ToList());
        foreach (var b in measured.Where(b => b.Norm / b.ShardCount > factor * median))
            yield return string.Create(CultureInfo.InvariantCulture,
                $"step {step}: block [{b.FirstShard}, {b.FirstShard + b.ShardCount}) from {b.Executor} has gradient norm {b.Norm:G4} " +
                $"({b.Norm / b.ShardCount:G4} per shard), above {factor:G}× the step's median block norm per shard {median:G4}; kept");
    }
}
