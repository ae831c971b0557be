// The losses a Sequential model can end in, as an enum for code; each maps to the model.loss name of a JSON config.
namespace DistTrain.Core.Api;

public enum LossFunction
{
    /// <summary>Softmax followed by cross-entropy on integer class labels ("softmax_cross_entropy").</summary>
    SoftmaxCrossEntropy,
    /// <summary>Squared error against one-hot targets ("mean_squared_error").</summary>
    MeanSquaredError,
    /// <summary>Multi-class hinge loss ("multiclass_hinge").</summary>
    MultiClassHinge,
    /// <summary>Sigmoid and binary cross-entropy on one output, labels 0 and 1 ("binary_cross_entropy_with_logits").</summary>
    BinaryCrossEntropyWithLogits,
}

internal static class LossFunctionNames
{
    public static string SpecName(this LossFunction loss) => loss switch
    {
        LossFunction.SoftmaxCrossEntropy => "softmax_cross_entropy",
        LossFunction.MeanSquaredError => "mean_squared_error",
        LossFunction.MultiClassHinge => "multiclass_hinge",
        LossFunction.BinaryCrossEntropyWithLogits => "binary_cross_entropy_with_logits",
        _ => throw new ArgumentOutOfRangeException(nameof(loss), loss, "not a defined LossFunction value"),
    };
}
