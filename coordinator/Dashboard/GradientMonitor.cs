// Watches per-layer gradient norms for vanishing (< threshold) and exploding (> threshold) values, non-finite
// norms and skipped steps. Check runs on the training thread, so it only bumps counters; alerts are built on read.
namespace DistTrain.Coordinator.Dashboard;

public enum GradientAlertKind { Vanishing, Exploding, NonFinite, SkippedSteps }

/// <summary>One alert; Layer is "" for whole-step alerts. Active when it fired within the recent window.</summary>
public sealed record GradientAlert(
    GradientAlertKind Kind, string Layer, long Count, long FirstStep, long LastStep, double LastValue, bool Active, string Message);

public sealed class GradientMonitor
{
    private const int Kinds = 3;
    private readonly string[] _layers;
    private readonly long[] _count, _first, _last;
    private readonly double[] _value;
    private long _skipped, _firstSkipped = -1, _lastSkipped = -1;

    public GradientMonitor(IReadOnlyList<string> layers, double vanishingBelow, double explodingAbove)
    {
        if (!(vanishingBelow >= 0) || !(explodingAbove > vanishingBelow))
            throw new ArgumentException($"need 0 ≤ vanishing ({vanishingBelow}) < exploding ({explodingAbove})");
        _layers = [.. layers];
        VanishingBelow = vanishingBelow;
        ExplodingAbove = explodingAbove;
        _count = new long[_layers.Length * Kinds];
        _first = new long[_layers.Length * Kinds];
        _last = new long[_layers.Length * Kinds];
        _value = new double[_layers.Length * Kinds];
    }

    public double VanishingBelow { get; }
    public double ExplodingAbove { get; }
    /// <summary>Alerts that fired within this many steps count as active (shown red, not grey).</summary>
    public long RecentSteps { get; init; } = 100;
    /// <summary>Total alert events; readers compare it to notice new ones cheaply.</summary>
    public long Events { get; private set; }

    public void Check(long step, ReadOnlySpan<double> layerNorms, bool skipped)
    {
        for (int layer = 0; layer < _layers.Length && layer < layerNorms.Length; layer++)
        {
            double norm = layerNorms[layer];
            if (double.IsNaN(norm) || double.IsInfinity(norm)) Note(layer, GradientAlertKind.NonFinite, step, norm);
            else if (norm > ExplodingAbove) Note(layer, GradientAlertKind.Exploding, step, norm);
            else if (norm < VanishingBelow) Note(layer, GradientAlertKind.Vanishing, step, norm);
        }
        if (skipped)
        {
            if (_skipped++ == 0) _firstSkipped = step;
            _lastSkipped = step;
            Events++;
        }
    }

    private void Note(int layer, GradientAlertKind kind, long step, double norm)
    {
        int i = layer * Kinds + (int)kind;
        if (_count[i]++ == 0) _first[i] = step;
        _last[i] = step;
        _value[i] = norm;
        Events++;
    }

    /// <summary>Every alert that has fired, active ones first.</summary>
    public List<GradientAlert> Alerts(long currentStep)
    {
        var alerts = new List<GradientAlert>();
        for (int layer = 0; layer < _layers.Length; layer++)
            for (int k = 0; k < Kinds; k++)
            {
                int i = layer * Kinds + k;
                if (_count[i] == 0) continue;
                var kind = (GradientAlertKind)k;
                string what = kind switch
                {
                    GradientAlertKind.Vanishing => $"vanishing gradient (norm {_value[i]:G3} < {VanishingBelow:G3})",
                    GradientAlertKind.Exploding => $"exploding gradient (norm {_value[i]:G3} > {ExplodingAbove:G3})",
                    _ => $"non-finite gradient (norm {_value[i]})",
                };
                alerts.Add(new GradientAlert(kind, _layers[layer], _count[i], _first[i], _last[i], _value[i],
                    currentStep - _last[i] <= RecentSteps,
                    $"layer {_layers[layer]}: {what} in {_count[i]} step(s), steps {_first[i]}–{_last[i]}"));
            }
        if (_skipped > 0)
            alerts.Add(new GradientAlert(GradientAlertKind.SkippedSteps, "", _skipped, _firstSkipped, _lastSkipped, double.NaN,
                currentStep - _lastSkipped <= RecentSteps,
                $"{_skipped} step(s) skipped for a non-finite gradient, steps {_firstSkipped}–{_lastSkipped}"));
        return [.. alerts.OrderByDescending(a => a.Active).ThenBy(a => a.FirstStep)];
    }
}
