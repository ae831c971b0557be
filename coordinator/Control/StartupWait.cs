// The start-up wait as a rule over the roster and the time waited: train once the expected workers are ready; settle
// for --min-workers once every expected worker has answered (ready or refused) or --wait-seconds has passed; fail,
// naming who was refused, when too few can be had.
using System.Globalization;

namespace DistTrain.Coordinator.Control;

internal static class StartupWait
{
    /// <summary>The commands that end the wait, or null to keep waiting.</summary>
    public static ClusterCommand[]? Decide(IReadOnlyList<WorkerRecord> workers, ControlOptions options, TimeSpan waited)
    {
        int ready = workers.Count(w => w.State == WorkerState.Ready);
        bool settled = workers.Count(w => w.State is WorkerState.Ready or WorkerState.Refused) >= options.ExpectWorkers
            && !workers.Any(w => w.State is WorkerState.Preparing or WorkerState.Rejoining);
        if (ready >= options.ExpectWorkers || (settled && ready >= options.MinWorkers))
            return [new LogLine($"{ready} worker(s) ready; training"), new StartTraining(ready)];
        if (settled) return [new FailRun(TooFew(workers, ready, options, "every expected worker has answered"))];
        if (waited < options.StartupTimeout) return null;
        string seconds = options.StartupTimeout.TotalSeconds.ToString("F0", CultureInfo.InvariantCulture);
        return ready >= options.MinWorkers
            ? [new LogLine($"{ready} worker(s) ready after {seconds}s; training with them"), new StartTraining(ready)]
            : [new FailRun(TooFew(workers, ready, options, $"waited {seconds}s"))];
    }

    private static string TooFew(IReadOnlyList<WorkerRecord> workers, int ready, ControlOptions options, string why)
    {
        string refused = string.Join("; ", workers.Where(w => w.State == WorkerState.Refused).Select(w => $"{w.Id} refused: {w.Reason}"));
        return $"only {ready} of {options.ExpectWorkers} worker(s) ready (need {options.MinWorkers}; {why})" +
            (refused.Length > 0 ? $" — {refused}" : "");
    }
}
