// The end-of-run notice as both ends agree on it: how a coordinator writes one and how a worker checks one it
// receives (an EndRun call or a heartbeat answer) before acting on it.
namespace DistTrain.Protos;

public static class RunEndNotice
{
    /// <summary>Longest detail a notice may carry; a longer one is a malformed notice, not a long reason.</summary>
    public const int MaxDetailLength = 1000;

    /// <summary>Longest coordinator_run accepted (a run id is 16 hex digits; the margin is for other builds).</summary>
    public const int MaxRunLength = 64;

    /// <summary>A notice with the first line of <paramref name="detail"/>, shortened to fit.</summary>
    public static RunEnd Create(RunOutcome outcome, string detail)
    {
        if (outcome == RunOutcome.Unspecified) throw new ArgumentOutOfRangeException(nameof(outcome), outcome, "a run ends with an outcome");
        string line = detail.Split('\n', 2)[0].TrimEnd('\r');
        return new RunEnd { Outcome = outcome, Detail = line.Length > MaxDetailLength ? line[..(MaxDetailLength - 1)] + "…" : line };
    }

    /// <summary>Null for a well-formed notice; otherwise what is wrong with it.</summary>
    public static string? Problem(RunEnd? end) => end switch
    {
        null => "the notice is missing",
        { Outcome: not (RunOutcome.Finished or RunOutcome.Failed or RunOutcome.Interrupted) } =>
            $"outcome {(int)end.Outcome} is not finished (1), failed (2) or interrupted (3)",
        { Detail.Length: > MaxDetailLength } => $"detail has {end.Detail.Length} characters, more than {MaxDetailLength}",
        _ => null,
    };

    /// <summary>"finished", "failed: reason", "interrupted: SIGTERM", with control characters replaced, for a log line.</summary>
    public static string Describe(RunEnd end)
    {
        string outcome = end.Outcome switch
        {
            RunOutcome.Finished => "finished",
            RunOutcome.Failed => "failed",
            RunOutcome.Interrupted => "interrupted",
            _ => "ended",
        };
        string detail = new(end.Detail.Select(c => char.IsControl(c) ? '?' : c).ToArray());
        return detail.Length > 0 ? $"{outcome}: {detail}" : outcome;
    }
}
