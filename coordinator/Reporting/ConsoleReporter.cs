// Terminal output: a progress bar on stderr while an epoch runs (only when stderr is a terminal) and one row per
// epoch on stdout with loss, accuracy, test accuracy, gradient norm and throughput.
using DistTrain.Core.Training;

namespace DistTrain.Coordinator.Reporting;

public sealed class ConsoleReporter(TextWriter output, TextWriter error, bool progressBar) : TrainingObserver
{
    private long _lastDraw;
    private double _epochLoss;
    private long _epochSamples;

    public override void OnStart(string description, long startStep, long totalSteps) =>
        output.WriteLine($"training {description}: {totalSteps} steps" + (startStep > 0 ? $", from step {startStep}" : ""));

    public override void OnStep(in StepReport report)
    {
        if (report.Batch == 0 || _epochSamples == 0) { _epochLoss = 0; _epochSamples = 0; }
        _epochLoss += report.Outcome.LossSum;
        _epochSamples += report.Outcome.Samples;
        if (report.Outcome.Skipped)
            error.WriteLine($"warning: step {report.Outcome.Step}: non-finite gradient (norm {report.Outcome.GradientNorm}); step skipped");
        if (!progressBar) return;
        long now = Environment.TickCount64;
        bool last = report.Batch == report.BatchesPerEpoch - 1;
        if (!last && now - _lastDraw < 100) return;
        _lastDraw = now;
        const int width = 30;
        double fraction = (report.Batch + 1.0) / report.BatchesPerEpoch;
        int filled = (int)(fraction * width);
        string bar = new string('#', filled) + new string('.', width - filled);
        error.Write(FormattableString.Invariant(
            $"\repoch {report.Epoch + 1} [{bar}] {fraction * 100,3:F0}% loss {_epochLoss / Math.Max(1, _epochSamples):F4} "));
        if (last) error.Write("\r" + new string(' ', width + 40) + "\r");
    }

    public override void OnEpoch(EpochMetrics m)
    {
        _epochSamples = 0;
        string test = double.IsNaN(m.TestAccuracy) ? "" : FormattableString.Invariant($"  test_loss {m.TestLoss:F4}  test_acc {m.TestAccuracy * 100:F2}%");
        output.WriteLine(FormattableString.Invariant(
            $"epoch {m.Epoch,3}/{m.Epochs}  loss {m.TrainLoss:F4}  acc {m.TrainAccuracy * 100:F2}%{test}  grad_norm {m.GradNorm:G4}  samples/s {m.SamplesPerSecond:N0}  {m.Seconds:F1}s"
            ) + (m.SkippedSteps > 0 ? $"  skipped {m.SkippedSteps}" : ""));
    }

    public override void OnCheckpoint(string path, long step) { }

    public override void OnMessage(string message) => error.WriteLine(message);
}
