// Softmax cross-entropy on logits: L = log Σ_j e^{z_j} − z_y, computed as a log-sum-exp with the row maximum
// subtracted so no exponent overflows; dL/dz = softmax(z) − onehot(y).

namespace DistTrain.Core.Losses;

public sealed class SoftmaxCrossEntropy : Loss
{
    public override string Name => "softmax_cross_entropy";

    public override double Compute(ReadOnlySpan<float> outputs, ReadOnlySpan<int> labels, Span<float> gradient,
        int rows, int width, out int correct)
    {
        double total = 0;
        correct = 0;
        // Each row's e^{z_j − max} in float64, computed once for the sum and the gradient (one rounding per gradient
        // value: over a batch the gradients of a last layer nearly cancel, so their own errors matter).
        Span<double> exps = width <= 1024 ? stackalloc double[width] : WideRow(width);
        for (int r = 0; r < rows; r++)
        {
            var z = outputs.Slice(r * width, width);
            int y = labels[r];
            int best = ArgMax(z); // the predicted class and the row's maximum at once
            if (best == y) correct++;
            float max = z[best];
            double sum = 0;
            for (int j = 0; j < width; j++) sum += exps[j] = Math.Exp(z[j] - max);
            double logSumExp = max + Math.Log(sum);
            total += logSumExp - z[y];
            if (!gradient.IsEmpty)
            {
                var g = gradient.Slice(r * width, width);
                for (int j = 0; j < width; j++) g[j] = (float)(exps[j] / sum - (j == y ? 1 : 0));
            }
        }
        return total;
    }

    // Rows too wide for the stack take a per-thread buffer, grown once: no allocation per call.
    [ThreadStatic] private static double[]? t_wideRow;

    private static Span<double> WideRow(int width)
    {
        if (t_wideRow is null || t_wideRow.Length < width) t_wideRow = new double[width];
        return t_wideRow.AsSpan(0, width);
    }
}
