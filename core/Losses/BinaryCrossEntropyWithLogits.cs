// Binary cross-entropy on logits, in the overflow-free form max(z,0) − z·t + log(1 + e^{−|z|}); dL/dz = σ(z) − t.
// One output: labels 0/1, predicted class 1 when z > 0. C outputs: one-hot targets, per-sample loss is the mean
// over the C outputs (as PyTorch's BCEWithLogitsLoss with mean reduction), prediction by arg-max.
namespace DistTrain.Core.Losses;

public sealed class BinaryCrossEntropyWithLogits : Loss
{
    public override string Name => "binary_cross_entropy_with_logits";

    public override int ClassesFor(int width) => width == 1 ? 2 : width;

    public override int PredictedClass(ReadOnlySpan<float> row) => row.Length == 1 ? (row[0] > 0 ? 1 : 0) : ArgMax(row);

    /// <summary>σ(z) per output: the probability of label 1 (one output) or of each class on its own.</summary>
    public override ProbabilityFunction Probabilities => ProbabilityFunction.Sigmoid;

    public override double Compute(ReadOnlySpan<float> outputs, ReadOnlySpan<int> labels, Span<float> gradient,
        int rows, int width, out int correct)
    {
        double total = 0;
        correct = 0;
        float share = 1f / width;
        for (int r = 0; r < rows; r++)
        {
            var z = outputs.Slice(r * width, width);
            int y = labels[r];
            if (PredictedClass(z) == y) correct++;
            double rowSum = 0;
            for (int j = 0; j < width; j++)
            {
                float t = width == 1 ? y : (j == y ? 1f : 0f);
                double zj = z[j];
                rowSum += Math.Max(zj, 0) - zj * t + Math.Log(1 + Math.Exp(-Math.Abs(zj)));
                if (!gradient.IsEmpty)
                {
                    // σ(z) evaluated on the side where e^{−|z|} cannot overflow.
                    double e = Math.Exp(-Math.Abs(zj));
                    double sigmoid = zj >= 0 ? 1 / (1 + e) : e / (1 + e);
                    gradient[r * width + j] = (float)((sigmoid - t) * share);
                }
            }
            total += rowSum / width;
        }
        return total;
    }
}
