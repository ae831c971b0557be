// Linear warm-up in front of any schedule: ramps up to the base rate, then runs the inner schedule from its
// own step 0, so the inner schedule's shape is unchanged, only shifted by the warm-up length.
namespace DistTrain.Core.Optim;

/// <summary>lr(t) = base·(t+1)/W for t &lt; W, else inner(t − W) (linear warm-up, Goyal et al. 2017).</summary>
public sealed class WarmupSchedule : ILearningRateSchedule
{
    public WarmupSchedule(ILearningRateSchedule inner, float baseLearningRate, int warmupSteps)
    {
        ArgumentNullException.ThrowIfNull(inner);
        if (warmupSteps < 1)
            throw new UserInputException($"schedule.warmupSteps must be >= 1 for a warm-up, found {warmupSteps}");
        Inner = inner;
        BaseLearningRate = baseLearningRate;
        WarmupSteps = warmupSteps;
    }

    public ILearningRateSchedule Inner { get; }
    public float BaseLearningRate { get; }
    public int WarmupSteps { get; }

    public float At(long step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        // (t+1)/W rather than t/W: the first step already trains (a zero rate would waste it), and step W−1
        // reaches the base rate exactly.
        return step < WarmupSteps
            ? (float)((double)BaseLearningRate * (step + 1) / WarmupSteps)
            : Inner.At(step - WarmupSteps);
    }
}
