// What a forward pass over many rows produces: the network's outputs, the probabilities the loss reads them as,
// and the class each row predicts, all row-major.
namespace DistTrain.Core.Training;

public sealed class Predictions
{
    internal Predictions(int rows, int width)
    {
        Rows = rows;
        Width = width;
        Logits = new float[(long)rows * width];
        Probabilities = new float[(long)rows * width];
        Classes = new int[rows];
    }

    public int Rows { get; }
    /// <summary>Outputs per row (the network's output width).</summary>
    public int Width { get; }
    /// <summary>The network's outputs [Rows × Width], before any softmax or sigmoid.</summary>
    public float[] Logits { get; }
    /// <summary>[Rows × Width]: softmax of each row, or σ of each output for binary cross-entropy.</summary>
    public float[] Probabilities { get; }
    /// <summary>The class each row predicts, as the loss counts a prediction correct.</summary>
    public int[] Classes { get; }

    public ReadOnlySpan<float> LogitsOf(int row) => Logits.AsSpan(row * Width, Width);
    public ReadOnlySpan<float> ProbabilitiesOf(int row) => Probabilities.AsSpan(row * Width, Width);

    /// <summary>Fraction of rows whose predicted class equals the label; NaN for no rows.</summary>
    public double Accuracy(ReadOnlySpan<int> labels)
    {
        if (labels.Length != Rows)
            throw new ArgumentException($"{labels.Length} labels for {Rows} predictions", nameof(labels));
        if (Rows == 0) return double.NaN;
        int correct = 0;
        for (int r = 0; r < Rows; r++) if (Classes[r] == labels[r]) correct++;
        return (double)correct / Rows;
    }
}
