// How a loss's outputs are read as probabilities, shared by the predictor and the ONNX export so both give the
// same numbers. For softmax cross-entropy the softmax is the model's class distribution; for mean squared error
// and multi-class hinge it is only a normalised score (positive, summing to 1, ordered like the outputs).
namespace DistTrain.Core.Losses;

public enum ProbabilityFunction
{
    /// <summary>p_j = e^{z_j} / Σ_k e^{z_k} over each row.</summary>
    Softmax,
    /// <summary>p_j = 1 / (1 + e^{−z_j}) for every output on its own.</summary>
    Sigmoid,
}

public static class Probabilities
{
    /// <summary>Probabilities of <paramref name="rows"/> rows of outputs [rows × width], computed in float64.</summary>
    public static void Compute(ProbabilityFunction function, ReadOnlySpan<float> outputs, Span<float> probabilities,
        int rows, int width)
    {
        for (int r = 0; r < rows; r++)
        {
            var z = outputs.Slice(r * width, width);
            var p = probabilities.Slice(r * width, width);
            if (function == ProbabilityFunction.Softmax) Softmax(z, p);
            else for (int j = 0; j < width; j++) p[j] = Sigmoid(z[j]);
        }
    }

    private static void Softmax(ReadOnlySpan<float> z, Span<float> p)
    {
        // The row maximum is subtracted so no exponent overflows; the sum is at least 1.
        double max = double.NegativeInfinity;
        foreach (float v in z) max = Math.Max(max, v);
        double sum = 0;
        for (int j = 0; j < z.Length; j++) sum += Math.Exp(z[j] - max);
        for (int j = 0; j < z.Length; j++) p[j] = (float)(Math.Exp(z[j] - max) / sum);
    }

    /// <summary>σ(z) evaluated on the side where e^{−|z|} cannot overflow.</summary>
    private static float Sigmoid(float z)
    {
        double e = Math.Exp(-Math.Abs((double)z));
        return (float)(z >= 0 ? 1 / (1 + e) : e / (1 + e));
    }
}
