// Whether a distributed run is communication-bound: per step, the slowest worker's compute against the step's time
// (the rest is the wire: serialisation, transfer, scheduling). After a warm-up, once the median share of a window of
// steps spent outside compute exceeds the threshold, it says so — once per run — with the measured split and what
// would help. Pure and deterministic: it sees only the durations it is given.
namespace DistTrain.Coordinator.Control;

public sealed class CommunicationMonitor
{
    /// <summary>Steps not judged (JIT, first touch of buffers, connection set-up).</summary>
    public const int WarmupSteps = 20;
    public const int Window = 50;
    /// <summary>Median share of the step outside the slowest worker's compute above which the wire dominates.</summary>
    public const double Threshold = 0.5;

    private readonly double[] _wait = new double[Window], _step = new double[Window], _compute = new double[Window];
    private readonly bool _bf16;
    private long _seen;
    private bool _said;

    /// <param name="bf16">The run already uses the 16-bit wire (then the advice does not suggest it).</param>
    public CommunicationMonitor(bool bf16 = false) => _bf16 = bf16;

    /// <summary>The notice, the first time the last <see cref="Window"/> steps after the warm-up are communication-bound; else null.</summary>
    public string? Observe(double stepSeconds, double slowestComputeSeconds)
    {
        if (_said || !(stepSeconds > 0) || !double.IsFinite(stepSeconds)) return null;
        double compute = Math.Clamp(double.IsFinite(slowestComputeSeconds) ? slowestComputeSeconds : 0, 0, stepSeconds);
        long n = _seen++ - WarmupSteps;
        if (n < 0) return null;
        int slot = (int)(n % Window);
        (_wait[slot], _step[slot], _compute[slot]) = ((stepSeconds - compute) / stepSeconds, stepSeconds, compute);
        if (n < Window - 1) return null;
        double share = Median(_wait);
        if (share <= Threshold) return null;
        _said = true;
        string help = _bf16
            ? "a larger batch (more compute per byte) or fewer workers per coordinator link would help"
            : "a larger batch (more compute per byte), --wire bf16 (half the bytes when each worker computes one shard a step) or fewer workers per coordinator link would help";
        return $"communication-bound: over the last {Window} steps the slowest worker computed a median " +
            $"{1000 * Median(_compute):F2} ms of a {1000 * Median(_step):F2} ms step; {100 * share:F0}% of the step is spent " +
            $"outside compute (transfer, serialisation, scheduling); {help}";
    }

    private static double Median(double[] values)
    {
        var sorted = (double[])values.Clone();
        Array.Sort(sorted);
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
