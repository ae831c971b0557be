// Multi-class hinge loss, Weston–Watkins form as in the lecture and PyTorch's MultiMarginLoss:
// L = (1/C) Σ_{j≠y} max(0, 1 − (z_y − z_j)). Each violated margin adds 1/C to dL/dz_j and subtracts it from dL/dz_y.
namespace DistTrain.Core.Losses;

public sealed class MultiClassHinge : Loss
{
    public override string Name => "multiclass_hinge";

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
            var g = gradient.IsEmpty ? Span<float>.Empty : gradient.Slice(r * width, width);
            if (!g.IsEmpty) g.Clear();
            double rowSum = 0;
            for (int j = 0; j < width; j++)
            {
                if (j == y) continue;
                float margin = 1f - (z[y] - z[j]);
                if (margin <= 0) continue;
                rowSum += margin;
                if (!g.IsEmpty)
                {
                    g[j] += share;
                    g[y] -= share;
                }
            }
            total += rowSum / width;
        }
        return total;
    }
}
