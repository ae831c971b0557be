// The loss contract. Per-sample losses are summed over the rows of a shard (the step divides by the batch size
// once, after the reduction), and the gradient written is that of the summed loss with respect to the outputs.
namespace DistTrain.Core.Losses;

public abstract class Loss
{
    public abstract string Name { get; }

    /// <summary>
    /// Sum over rows of the per-sample loss for outputs [rows × width] and integer labels; writes d(sum)/d(outputs)
    /// into <paramref name="gradient"/> unless it is empty; counts correct predictions.
    /// </summary>
    public abstract double Compute(ReadOnlySpan<float> outputs, ReadOnlySpan<int> labels, Span<float> gradient,
        int rows, int width, out int correct);

    /// <summary>Number of classes a label may name for this output width (binary losses on one output: 2).</summary>
    public virtual int ClassesFor(int width) => width;

    /// <summary>The class one row of outputs predicts, as <see cref="Compute"/> counts it correct: the arg-max.</summary>
    public virtual int PredictedClass(ReadOnlySpan<float> row) => ArgMax(row);

    /// <summary>How outputs are read as probabilities: a softmax over the row unless the loss says otherwise.</summary>
    public virtual ProbabilityFunction Probabilities => ProbabilityFunction.Softmax;

    public static Loss Create(string name) => name.ToLowerInvariant() switch
    {
        "softmax_cross_entropy" => new SoftmaxCrossEntropy(),
        "mean_squared_error" => new MeanSquaredError(),
        "multiclass_hinge" => new MultiClassHinge(),
        "binary_cross_entropy_with_logits" => new BinaryCrossEntropyWithLogits(),
        _ => throw new UserInputException(
            $"model.loss '{name}' is unknown; expected one of {string.Join(", ", Model.ModelSpec.LossTypes)}"),
    };

    /// <summary>Index of the largest value (first on ties).</summary>
    protected static int ArgMax(ReadOnlySpan<float> row)
    {
        int best = 0;
        for (int j = 1; j < row.Length; j++) if (row[j] > row[best]) best = j;
        return best;
    }
}
