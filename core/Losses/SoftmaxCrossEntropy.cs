// Softmax cross-entropy on logits: L = log Σ_j e^{z_j} − z_y, computed as a log-sum-exp with the row maximum
// subtracted so no exponent overflows; dL/dz = softmax(z) − onehot(y).
using System.Numerics.Tensors;

namespace DistTrain.Core.Losses;

public sealed class SoftmaxCrossEntropy : Loss
{
    public override string Name => "softmax_cross_entropy";

    public override double Compute(ReadOnlySpan<float> outputs, ReadOnlySpan<int> labels, Span<float> gradient,
        int rows, int width, out int correct)
    {
        double total = 0;
        correct = 0;
        for (int r = 0; r < rows; r++)
        {
            var z = outputs.Slice(r * width, width);
            int y = labels[r];
            int best = ArgMax(z); // the predicted class and the row's maximum at once
            if (best == y) correct++;
            float max = z[best];
            double sum = 0;
            for (int j = 0; j < width; j++) sum += Math.Exp(z[j] - max);
            double logSumExp = max + Math.Log(sum);
            total += logSumExp - z[y];
            if (!gradient.IsEmpty)
            {
                var g = gradient.Slice(r * width, width);
                TensorPrimitives.Subtract(z, max, g);
                TensorPrimitives.Exp(g, g);
                TensorPrimitives.Multiply(g, (float)(1.0 / sum), g);
                g[y] -= 1f;
            }
        }
        return total;
    }
}
