// Per-step durations of a benchmark run. Samples/s follows the mean step, which a few stalled steps (another
// process taking a CPU, a page-reclaim pass) move far more than the median: printing the median and the tail
// beside it shows whether a slower run is slower in every step or only in some.
using System.Globalization;

namespace DistTrain.Coordinator.Reporting;

public sealed class StepTimes
{
    private readonly List<double> _seconds = [];

    public int Count => _seconds.Count;

    /// <summary>The steps' summed duration.</summary>
    public double Total => _seconds.Sum();

    public void Add(double seconds) => _seconds.Add(seconds);

    public double Mean => _seconds.Count == 0 ? double.NaN : _seconds.Average();

    /// <summary>The middle value (the mean of the two middle values for an even count); NaN when empty.</summary>
    public double Median => Quantile(0.5);

    /// <summary>
    /// The <paramref name="q"/>-quantile by linear interpolation between closest ranks (q = 0.5 is the median,
    /// q = 1 the maximum); NaN when empty.
    /// </summary>
    public double Quantile(double q)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(q, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(q, 1);
        if (_seconds.Count == 0) return double.NaN;
        var sorted = _seconds.Order().ToArray();
        double rank = q * (sorted.Length - 1);
        int below = (int)Math.Floor(rank);
        int above = Math.Min(below + 1, sorted.Length - 1);
        return sorted[below] + (rank - below) * (sorted[above] - sorted[below]);
    }

    /// <summary>"step time: median 16.81 ms, mean 17.12 ms, 90th percentile 18.40 ms, max 25.33 ms (114 steps)".</summary>
    public string Describe() => _seconds.Count == 0 ? "step time: no steps measured"
        : string.Create(CultureInfo.InvariantCulture,
            $"step time: median {Median * 1000:F2} ms, mean {Mean * 1000:F2} ms, 90th percentile {Quantile(0.9) * 1000:F2} ms, max {Quantile(1) * 1000:F2} ms ({Count} steps)");
}
