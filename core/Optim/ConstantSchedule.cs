// The default learning-rate schedule: the base rate at every step.
namespace DistTrain.Core.Optim;

/// <summary>lr(t) = base.</summary>
public sealed class ConstantSchedule(float baseLearningRate) : ILearningRateSchedule
{
    public float BaseLearningRate { get; } = baseLearningRate;

    public float At(long step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        return BaseLearningRate;
    }
}
