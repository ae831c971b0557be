// Builds the optimizer a training config names, validating the "optimizer" section so that a bad value is one
// line naming the field, the expected range and the value found.
namespace DistTrain.Core.Optim;

public static class OptimizerFactory
{
    /// <summary>The accepted values of optimizer.type, in order of increasing complexity.</summary>
    public static IReadOnlyList<string> Types { get; } = ["sgd", "adagrad", "rmsprop", "adam", "adamw"];

    /// <summary>Creates the optimizer for <paramref name="parameterCount"/> parameters; throws
    /// <see cref="UserInputException"/> for invalid settings.</summary>
    public static IOptimizer Create(OptimizerSpec spec, int parameterCount)
    {
        ArgumentNullException.ThrowIfNull(spec);
        OptimizerGuard.RequirePositive("learningRate", spec.LearningRate);
        string type = (spec.Type ?? "").Trim().ToLowerInvariant();
        if (!Types.Contains(type))
            throw new UserInputException(
                $"optimizer.type '{spec.Type}' is unknown; expected one of {string.Join(", ", Types)}");
        // Settings that the chosen optimizer would silently ignore are refused: a user who sets them expects
        // them to act.
        if (spec.Nesterov && type != "sgd")
            throw new UserInputException($"optimizer.nesterov applies only to sgd, found optimizer.type '{type}'");
        if (spec.Momentum != 0f && type is not ("sgd" or "rmsprop"))
            throw new UserInputException(
                $"optimizer.momentum applies only to sgd and rmsprop, found {OptimizerGuard.Format(spec.Momentum)} with optimizer.type '{type}'");
        if (spec.Centered && type != "rmsprop")
            throw new UserInputException($"optimizer.centered applies only to rmsprop, found optimizer.type '{type}'");
        return type switch
        {
            "sgd" => new Sgd(parameterCount, spec.Momentum, spec.Nesterov, spec.WeightDecay),
            "adagrad" => new AdaGrad(parameterCount, spec.Epsilon, spec.WeightDecay, spec.InitialAccumulator),
            "rmsprop" => new RmsProp(parameterCount, spec.Alpha, spec.Epsilon, spec.Momentum, spec.Centered,
                spec.WeightDecay),
            "adam" => new Adam(parameterCount, spec.Beta1, spec.Beta2, spec.Epsilon, spec.WeightDecay,
                decoupledWeightDecay: false),
            "adamw" => new Adam(parameterCount, spec.Beta1, spec.Beta2, spec.Epsilon, spec.WeightDecay,
                decoupledWeightDecay: true),
            _ => throw new InvalidOperationException($"optimizer.type '{type}' passed validation but has no case"),
        };
    }
}
