// With --log-json, the run's events (start, epochs, checkpoints, messages) also go out as structured log records,
// so a collector gets the same figures as the console rows without scraping them.
using DistTrain.Core.Training;
using Microsoft.Extensions.Logging;

namespace DistTrain.Coordinator.Dashboard;

public sealed class TrainingLogObserver(ILogger log) : TrainingObserver
{
    public override void OnStart(string description, long startStep, long totalSteps) =>
        log.LogInformation("training {Model}: {TotalSteps} steps from step {StartStep}", description, totalSteps, startStep);

    public override void OnEpoch(EpochMetrics m) =>
        log.LogInformation(
            "epoch {Epoch}/{Epochs} step {Step}: loss {TrainLoss} acc {TrainAccuracy} test_loss {TestLoss} test_acc {TestAccuracy} grad_norm {GradNorm} samples/s {SamplesPerSecond} seconds {Seconds} skipped {SkippedSteps} clipped {ClipEvents}",
            m.Epoch, m.Epochs, m.Step, Finite(m.TrainLoss), Finite(m.TrainAccuracy), Finite(m.TestLoss), Finite(m.TestAccuracy),
            Finite(m.GradNorm), Finite(m.SamplesPerSecond), m.Seconds, m.SkippedSteps, m.ClipEvents);

    // The JSON console formatter throws on NaN and ±Infinity (no test set, a diverged run): those become null.
    private static double? Finite(double value) => double.IsFinite(value) ? value : null;

    public override void OnCheckpoint(string path, long step) =>
        log.LogInformation("checkpoint at step {Step}: {Path}", step, path);

    public override void OnMessage(string message) => log.LogInformation("{Message}", message);
}
