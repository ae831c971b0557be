// Cosine annealing: a half cosine from the base rate down to a minimum over a fixed number of steps, then flat.
namespace DistTrain.Core.Optim;

/// <summary>
/// lr(t) = min + (base − min)·(1 + cos(π·t/T))/2 for t &lt; T and min afterwards (SGDR without restarts,
/// Loshchilov &amp; Hutter 2017; torch.optim.lr_scheduler.CosineAnnealingLR), computed in double.
/// </summary>
public sealed class CosineSchedule : ILearningRateSchedule
{
    public CosineSchedule(float baseLearningRate, float minLearningRate, long totalSteps)
    {
        if (totalSteps < 1)
            throw new UserInputException(
                $"schedule.totalSteps must be >= 1 for a cosine schedule (after warm-up), found {totalSteps}");
        if (!(minLearningRate >= 0f && minLearningRate <= baseLearningRate))
            throw new UserInputException(
                $"schedule.minLearningRate must be in [0, {OptimizerGuard.Format(baseLearningRate)}] (the base rate), found {OptimizerGuard.Format(minLearningRate)}");
        BaseLearningRate = baseLearningRate;
        MinLearningRate = minLearningRate;
        TotalSteps = totalSteps;
    }

    public float BaseLearningRate { get; }
    public float MinLearningRate { get; }
    public long TotalSteps { get; }

    public float At(long step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        if (step >= TotalSteps) return MinLearningRate;
        double min = MinLearningRate;
        return (float)(min + (BaseLearningRate - min) * (1.0 + Math.Cos(Math.PI * step / TotalSteps)) / 2.0);
    }
}
