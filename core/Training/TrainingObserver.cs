// What a training run reports as it goes: the console, the metrics file, the step log and the dashboard all
// listen here, so the training loop itself knows nothing about presentation.
namespace DistTrain.Core.Training;

/// <summary>One epoch's summary; test values are NaN when there is no test set.</summary>
public sealed record EpochMetrics(
    int Epoch, int Epochs, long Step, double TrainLoss, double TrainAccuracy, double TestLoss, double TestAccuracy,
    double GradNorm, double SamplesPerSecond, double Seconds, double TrainSeconds, float LearningRate,
    long SkippedSteps, long ClipEvents, IReadOnlyList<(string Layer, double Norm)> LayerGradNorms);

/// <summary>One completed step; <see cref="Outcome"/> and <see cref="Blocks"/> are reused after the call returns.</summary>
public readonly record struct StepReport(
    int Epoch, int Batch, int BatchesPerEpoch, StepOutcome Outcome, IReadOnlyList<BlockRecord> Blocks,
    ArraySegment<int> BatchIndices, int ShardSize, double Seconds);

public abstract class TrainingObserver
{
    public virtual void OnStart(string description, long startStep, long totalSteps) { }
    public virtual void OnStep(in StepReport report) { }
    public virtual void OnEpoch(EpochMetrics metrics) { }
    public virtual void OnCheckpoint(string path, long step) { }
    public virtual void OnMessage(string message) { }
}

/// <summary>Forwards every event to several observers.</summary>
public sealed class CompositeObserver(IReadOnlyList<TrainingObserver> observers) : TrainingObserver
{
    public override void OnStart(string description, long startStep, long totalSteps)
    {
        foreach (var o in observers) o.OnStart(description, startStep, totalSteps);
    }

    public override void OnStep(in StepReport report)
    {
        foreach (var o in observers) o.OnStep(report);
    }

    public override void OnEpoch(EpochMetrics metrics)
    {
        foreach (var o in observers) o.OnEpoch(metrics);
    }

    public override void OnCheckpoint(string path, long step)
    {
        foreach (var o in observers) o.OnCheckpoint(path, step);
    }

    public override void OnMessage(string message)
    {
        foreach (var o in observers) o.OnMessage(message);
    }
}
