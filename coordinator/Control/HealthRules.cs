// Stragglers and hangs, from the machine's own timestamps; pure functions, so the rules are tested with numbers.
// Straggler: the median of its last HealthWindow (8) request latencies is above HealthFactor (2) × the median of its
// peers' recent latencies — "stays above" means most of its recent requests, so one slow step is an accident and not
// a name. Hung: it has not answered for longer than HealthFactor × the median step time (and at least HungMinimum),
// which a stopped or wedged process shows long before its heartbeats run out.
using System.Globalization;

namespace DistTrain.Coordinator.Control;

internal static class HealthRules
{
    public static double Median(IReadOnlyList<double> values)
    {
        if (values.Count == 0) return double.NaN;
        var sorted = values.Order().ToArray();
        int middle = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }

    /// <summary>
    /// The detail naming a straggler, or null. <paramref name="own"/>: its recent latencies; <paramref name="peers"/>:
    /// the recent latencies of the other ready workers, pooled. Judged only once its window is full and the peers have
    /// half a window between them.
    /// </summary>
    public static string? Straggler(IReadOnlyList<double> own, IReadOnlyList<double> peers, ControlOptions options)
    {
        if (own.Count < options.HealthWindow || peers.Count < Math.Max(1, options.HealthWindow / 2)) return null;
        double mine = Median(own), theirs = Median(peers);
        if (mine < options.StragglerMinimum.TotalSeconds || !(mine > options.HealthFactor * theirs)) return null;
        return string.Create(CultureInfo.InvariantCulture,
            $"median request {Duration(mine)} over its last {own.Count} vs. {Duration(theirs)} for its peers ({mine / theirs:F1}×)");
    }

    /// <summary>
    /// The detail naming a hang, or null. The machine has waited on one of its requests (the oldest open one,
    /// <paramref name="oldestOpen"/>) past the limit, or it has let every request of the last HealthWindow steps go
    /// unanswered for longer than the limit (a pool member that stopped: each step ends without it). The median step
    /// time is NaN before any step completed: no judgement then, the first steps include every node's warm-up.
    /// </summary>
    public static string? Hung(TimeSpan now, TimeSpan? oldestOpen, WorkerMeter meter, double medianStepSeconds, ControlOptions options)
    {
        if (meter.UnansweredSince is not { } since || double.IsNaN(medianStepSeconds)) return null;
        double silent = (now - since).TotalSeconds;
        double limit = Math.Max(options.HealthFactor * medianStepSeconds, options.HungMinimum.TotalSeconds);
        bool waitedOn = oldestOpen is { } open && (now - open).TotalSeconds > limit;
        bool passedOver = meter.UnansweredSteps >= options.HealthWindow && silent > limit;
        if (!waitedOn && !passedOver) return null;
        return string.Create(CultureInfo.InvariantCulture,
            $"no answer for {Duration(silent)} (limit {Duration(limit)}, median step {Duration(medianStepSeconds)}); waiting for its reply to {meter.LastSent}");
    }

    public static string Duration(double seconds) =>
        seconds < 0.01 ? string.Create(CultureInfo.InvariantCulture, $"{seconds * 1000:F2} ms")
            : seconds < 1 ? string.Create(CultureInfo.InvariantCulture, $"{seconds * 1000:F0} ms")
            : string.Create(CultureInfo.InvariantCulture, $"{seconds:F1} s");
}
