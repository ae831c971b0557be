// Squared error against one-hot targets, per sample L = (1/C) Σ_j (z_j − t_j)² (so the batch mean equals
// PyTorch's MSELoss with mean reduction); dL/dz_j = 2 (z_j − t_j) / C.
namespace DistTrain.Core.Losses;

public sealed class MeanSquaredError : Loss
{
    public override string Name => "mean_squared_error";

    public override double Compute(ReadOnlySpan<float> outputs, ReadOnlySpan<int> labels, Span<float> gradient,
        int rows, int width, out int correct)
    {
        double total = 0;
        correct = 0;
        float scale = 2f / width;
        for (int r = 0; r < rows; r++)
        {
            var z = outputs.Slice(r * width, width);
            int y = labels[r];
            if (PredictedClass(z) == y) correct++;
            double rowSum = 0;
            for (int j = 0; j < width; j++)
            {
                float diff = z[j] - (j == y ? 1f : 0f);
                rowSum += (double)diff * diff;
                if (!gradient.IsEmpty) gradient[r * width + j] = scale * diff;
            }
            total += rowSum / width;
        }
        return total;
    }
}
