// Step decay: the learning rate drops by a constant factor every fixed number of steps.
namespace DistTrain.Core.Optim;

/// <summary>lr(t) = base · γ^⌊t / stepSize⌋ (torch.optim.lr_scheduler.StepLR), computed in double.</summary>
public sealed class StepSchedule : ILearningRateSchedule
{
    public StepSchedule(float baseLearningRate, int stepSize, float gamma)
    {
        if (stepSize < 1)
            throw new UserInputException($"schedule.stepSize must be >= 1, found {stepSize}");
        if (!(gamma > 0f && float.IsFinite(gamma)))
            throw new UserInputException($"schedule.gamma must be > 0 and finite, found {OptimizerGuard.Format(gamma)}");
        BaseLearningRate = baseLearningRate;
        StepSize = stepSize;
        Gamma = gamma;
    }

    public float BaseLearningRate { get; }
    public int StepSize { get; }
    public float Gamma { get; }

    public float At(long step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        return (float)(BaseLearningRate * Math.Pow(Gamma, step / StepSize));
    }
}
