// Per-thread scratch for forward and backward passes over up to MaxRows samples: the gathered input rows, each
// layer's output and output gradient. Sized once and reused, so a training step allocates nothing.
using DistTrain.Core.Data;

namespace DistTrain.Core.Model;

public sealed class NetworkWorkspace
{
    private readonly float[] _input;
    private readonly int[] _labels;
    private readonly float[][] _outputs;
    private readonly float[][] _outputGradients;

    public NetworkWorkspace(Network network, int maxRows)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRows, 1);
        Network = network;
        MaxRows = maxRows;
        _input = new float[maxRows * network.Inputs];
        _labels = new int[maxRows];
        _outputs = network.Layers.Select(l => new float[maxRows * l.OutputWidth]).ToArray();
        _outputGradients = network.Layers.Select(l => new float[maxRows * l.OutputWidth]).ToArray();
    }

    public Network Network { get; }
    public int MaxRows { get; }

    /// <summary>Outputs of the last forward pass, [rows × Outputs].</summary>
    public ReadOnlySpan<float> Outputs(int rows) => _outputs[^1].AsSpan(0, rows * Network.Outputs);

    /// <summary>
    /// Summed loss over the samples <paramref name="indices"/> of <paramref name="data"/>, and the gradient of that
    /// sum written (not added) into <paramref name="gradient"/> (the full flat buffer).
    /// </summary>
    public double ComputeGradient(ReadOnlySpan<float> parameters, Dataset data, ReadOnlySpan<int> indices,
        Span<float> gradient, out int correct)
    {
        int rows = Gather(data, indices);
        Forward(parameters, rows);
        var layers = Network.Layers;
        double loss = Network.Loss.Compute(_outputs[^1], _labels.AsSpan(0, rows), _outputGradients[^1], rows,
            Network.Outputs, out correct);
        for (int i = layers.Count - 1; i >= 0; i--)
        {
            ReadOnlySpan<float> input = i == 0 ? _input : _outputs[i - 1];
            Span<float> inputGradient = i == 0 ? Span<float>.Empty : _outputGradients[i - 1];
            layers[i].Backward(parameters, input, _outputs[i], _outputGradients[i], inputGradient, gradient, rows);
        }
        return loss;
    }

    /// <summary>Summed loss and correct count without gradients.</summary>
    public double Evaluate(ReadOnlySpan<float> parameters, Dataset data, ReadOnlySpan<int> indices, out int correct)
    {
        int rows = Gather(data, indices);
        Forward(parameters, rows);
        return Network.Loss.Compute(_outputs[^1], _labels.AsSpan(0, rows), Span<float>.Empty, rows, Network.Outputs,
            out correct);
    }

    /// <summary>Forward pass on rows already in row-major form (for prediction).</summary>
    public ReadOnlySpan<float> Predict(ReadOnlySpan<float> parameters, ReadOnlySpan<float> inputs, int rows)
    {
        if (rows > MaxRows) throw new ArgumentOutOfRangeException(nameof(rows), rows, $"at most {MaxRows} rows");
        inputs[..(rows * Network.Inputs)].CopyTo(_input);
        Forward(parameters, rows);
        return Outputs(rows);
    }

    private int Gather(Dataset data, ReadOnlySpan<int> indices)
    {
        int rows = indices.Length;
        if (rows > MaxRows) throw new ArgumentOutOfRangeException(nameof(indices), rows, $"at most {MaxRows} rows");
        int width = Network.Inputs;
        for (int r = 0; r < rows; r++)
        {
            data.Row(indices[r]).CopyTo(_input.AsSpan(r * width, width));
            _labels[r] = data.Labels[indices[r]];
        }
        return rows;
    }

    private void Forward(ReadOnlySpan<float> parameters, int rows)
    {
        var layers = Network.Layers;
        for (int i = 0; i < layers.Count; i++)
            layers[i].Forward(parameters, i == 0 ? _input : _outputs[i - 1], _outputs[i], rows);
    }
}
