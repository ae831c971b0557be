// Argument checks shared by the optimizers: hyper-parameters are user config (UserInputException naming the
// config field), buffer shapes are programming errors (ArgumentException). Kept out of the hot loops.
using System.Globalization;

namespace DistTrain.Core.Optim;

internal static class OptimizerGuard
{
    /// <summary>Requires value in [0, 1) — momentum, β1, β2, α. NaN fails every comparison, so it is rejected.</summary>
    public static void RequireUnitInterval(string field, float value)
    {
        if (!(value >= 0f && value < 1f))
            throw new UserInputException($"optimizer.{field} must be in [0, 1), found {Format(value)}");
    }

    public static void RequirePositive(string field, float value)
    {
        if (!(value > 0f && float.IsFinite(value)))
            throw new UserInputException($"optimizer.{field} must be > 0 and finite, found {Format(value)}");
    }

    public static void RequireNonNegative(string field, float value)
    {
        if (!(value >= 0f && float.IsFinite(value)))
            throw new UserInputException($"optimizer.{field} must be >= 0 and finite, found {Format(value)}");
    }

    public static void RequireParameterCount(int parameterCount) =>
        ArgumentOutOfRangeException.ThrowIfNegative(parameterCount);

    /// <summary>Checks the buffers of one Step against the size the optimizer was built for.</summary>
    public static void CheckStep(int parameterCount, int parameters, int gradient, float learningRate)
    {
        if (parameters != parameterCount || gradient != parameterCount)
            throw new ArgumentException(
                $"optimizer built for {parameterCount} parameters got parameters[{parameters}] and gradient[{gradient}]");
        // 0 is legal: a cosine schedule may end at a minimum of 0.
        if (!(learningRate >= 0f && float.IsFinite(learningRate)))
            throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "must be >= 0 and finite");
    }

    public static string Format(float value) => value.ToString(CultureInfo.InvariantCulture);
}
