// Builds the learning-rate schedule a training config names ("schedule" section), wrapping it in a linear
// warm-up when one is asked for; invalid settings become one line naming the field.
namespace DistTrain.Core.Optim;

public static class ScheduleFactory
{
    /// <summary>The accepted values of schedule.type.</summary>
    public static IReadOnlyList<string> Types { get; } = ["constant", "step", "cosine"];

    /// <summary>
    /// Creates the schedule. <paramref name="totalSteps"/> is the run's length in steps, used by cosine when
    /// schedule.totalSteps is 0; after a warm-up of W steps the inner schedule runs over T − W steps.
    /// </summary>
    public static ILearningRateSchedule Create(ScheduleSpec spec, float baseLearningRate, long totalSteps)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentOutOfRangeException.ThrowIfNegative(totalSteps);
        OptimizerGuard.RequirePositive("learningRate", baseLearningRate);
        string type = (spec.Type ?? "").Trim().ToLowerInvariant();
        if (!Types.Contains(type))
            throw new UserInputException(
                $"schedule.type '{spec.Type}' is unknown; expected one of {string.Join(", ", Types)}");
        if (spec.WarmupSteps < 0)
            throw new UserInputException($"schedule.warmupSteps must be >= 0, found {spec.WarmupSteps}");
        if (spec.TotalSteps < 0)
            throw new UserInputException($"schedule.totalSteps must be >= 0 (0 = the run's total), found {spec.TotalSteps}");
        long total = spec.TotalSteps > 0 ? spec.TotalSteps : totalSteps;
        int warmup = spec.WarmupSteps;

        ILearningRateSchedule inner;
        switch (type)
        {
            case "constant":
                inner = new ConstantSchedule(baseLearningRate);
                break;
            case "step":
                inner = new StepSchedule(baseLearningRate, spec.StepSize, spec.Gamma);
                break;
            default:
                if (total < 1)
                    throw new UserInputException(
                        $"schedule.totalSteps must be >= 1 for a cosine schedule, found 0 and the run's total is {totalSteps}");
                if (total <= warmup)
                    throw new UserInputException(
                        $"schedule.warmupSteps must be < the total steps ({total}) for a cosine schedule, found {warmup}");
                inner = new CosineSchedule(baseLearningRate, spec.MinLearningRate, total - warmup);
                break;
        }
        return warmup > 0 ? new WarmupSchedule(inner, baseLearningRate, warmup) : inner;
    }
}
