// Per-thread scratch for forward and backward passes over up to MaxRows samples: the gathered input rows (unless the
// first layer reads them from the dataset's bytes), each layer's output, output gradient and own scratch. Sized once
// and reused, so a training step allocates nothing.
using DistTrain.Core.Data;
using DistTrain.Core.Kernels;
using DistTrain.Core.Layers;

namespace DistTrain.Core.Model;

public sealed class NetworkWorkspace
{
    private readonly float[] _input;
    /// <summary>The first layer reads a batch of images where the dataset holds them as bytes: it can (a Linear
    /// layer), and a sample's layout needs no conversion. No copy of the batch is made.</summary>
    private readonly bool _readsBytesInPlace;
    /// <summary>The pass under way reads these bytes (rows named by <see cref="_samples"/>), not <see cref="_input"/>.</summary>
    private byte[]? _gatheredBytes;
    private ByteDivisor _gatheredDivisor = ByteDivisor.One;
    private readonly int[] _labels;
    private readonly int[] _samples;
    private readonly float[][] _outputs;
    private readonly float[][] _outputGradients;
    private readonly float[][] _scratch;

    public NetworkWorkspace(Network network, int maxRows)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRows, 1);
        Network = network;
        MaxRows = maxRows;
        _input = new float[maxRows * network.Inputs];
        _readsBytesInPlace = network.Layers.Count > 0 && network.Layers[0].ReadsGatheredInput && Flatten.KeepsLayout(network.InputShape);
        _labels = new int[maxRows];
        _samples = new int[maxRows];
        _outputs = network.Layers.Select(l => new float[maxRows * l.OutputWidth]).ToArray();
        _outputGradients = network.Layers.Select(l => new float[maxRows * l.OutputWidth]).ToArray();
        _scratch = network.Layers.Select(l =>
        {
            long floats = l.ScratchFloats(maxRows);
            if (floats > Array.MaxLength)
                throw new UserInputException($"layer {l.GetType().Name} needs {floats:N0} floats of scratch for {maxRows} rows; lower training.shardSize");
            return new float[floats];
        }).ToArray();
    }

    public Network Network { get; }
    public int MaxRows { get; }

    /// <summary>Outputs of the last forward pass, [rows × Outputs].</summary>
    public ReadOnlySpan<float> Outputs(int rows) => _outputs[^1].AsSpan(0, rows * Network.Outputs);

    /// <summary>
    /// Summed loss over the samples <paramref name="indices"/> of <paramref name="data"/>, and the gradient of that
    /// sum written (not added) into <paramref name="gradient"/> (the full flat buffer). <paramref name="step"/> (with
    /// the model's seed and each sample's index) decides the dropout masks.
    /// </summary>
    public double ComputeGradient(ReadOnlySpan<float> parameters, Dataset data, ReadOnlySpan<int> indices,
        Span<float> gradient, out int correct, long step = 0)
    {
        int rows = Gather(data, indices);
        Forward(parameters, rows, training: true, step);
        var layers = Network.Layers;
        double loss = Network.Loss.Compute(_outputs[^1], _labels.AsSpan(0, rows), _outputGradients[^1], rows,
            Network.Outputs, out correct);
        for (int i = layers.Count - 1; i >= 0; i--)
        {
            ReadOnlySpan<float> input = i == 0 ? _input : _outputs[i - 1]; // not read by a first layer reading bytes
            Span<float> inputGradient = i == 0 ? Span<float>.Empty : _outputGradients[i - 1];
            layers[i].Backward(parameters, input, _outputs[i], _outputGradients[i], inputGradient, gradient, rows,
                Context(i, rows, training: true, step));
        }
        return loss;
    }

    /// <summary>Summed loss and correct count without gradients (evaluation mode: no dropout, running statistics).</summary>
    public double Evaluate(ReadOnlySpan<float> parameters, Dataset data, ReadOnlySpan<int> indices, out int correct)
    {
        int rows = Gather(data, indices);
        Forward(parameters, rows, training: false, step: 0);
        return Network.Loss.Compute(_outputs[^1], _labels.AsSpan(0, rows), Span<float>.Empty, rows, Network.Outputs,
            out correct);
    }

    /// <summary>Forward pass in evaluation mode on rows already in row-major form (for prediction).</summary>
    public ReadOnlySpan<float> Predict(ReadOnlySpan<float> parameters, ReadOnlySpan<float> inputs, int rows)
    {
        if (rows > MaxRows) throw new ArgumentOutOfRangeException(nameof(rows), rows, $"at most {MaxRows} rows");
        int width = Network.Inputs;
        for (int r = 0; r < rows; r++)
        {
            Flatten.ToChannelsLast(inputs.Slice(r * width, width), _input.AsSpan(r * width, width), Network.InputShape);
            _samples[r] = r;
        }
        _gatheredBytes = null;
        Forward(parameters, rows, training: false, step: 0);
        return Outputs(rows);
    }

    private int Gather(Dataset data, ReadOnlySpan<int> indices)
    {
        int rows = indices.Length;
        if (rows > MaxRows) throw new ArgumentOutOfRangeException(nameof(indices), rows, $"at most {MaxRows} rows");
        int width = Network.Inputs;
        for (int r = 0; r < rows; r++)
        {
            _labels[r] = data.Labels[indices[r]];
            _samples[r] = indices[r];
        }
        _gatheredBytes = null;
        if (_readsBytesInPlace && data.Width == width && data.TryGetByteArray(out byte[] bytes, out _gatheredDivisor))
        {
            _gatheredBytes = bytes;
            return rows;
        }
        // Images arrive in PyTorch's [C][H][W] order and are kept channels-last; where the two orders are the same,
        // the dataset copies (or widens, from bytes) each row itself.
        bool copies = Flatten.KeepsLayout(Network.InputShape) && data.Width == width;
        for (int r = 0; r < rows; r++)
        {
            if (copies) data.CopyRow(indices[r], _input.AsSpan(r * width, width));
            else Flatten.ToChannelsLast(data.Row(indices[r]), _input.AsSpan(r * width, width), Network.InputShape);
        }
        return rows;
    }

    private LayerContext Context(int layer, int rows, bool training, long step) =>
        layer == 0 && _gatheredBytes is { } bytes
            ? new(_scratch[layer], MaxRows, training, Network.Spec.Seed, step, _samples.AsSpan(0, rows), bytes, _samples.AsSpan(0, rows), _gatheredDivisor)
            : new(_scratch[layer], MaxRows, training, Network.Spec.Seed, step, _samples.AsSpan(0, rows));

    private void Forward(ReadOnlySpan<float> parameters, int rows, bool training, long step)
    {
        var layers = Network.Layers;
        for (int i = 0; i < layers.Count; i++)
            layers[i].Forward(parameters, i == 0 ? _input : _outputs[i - 1], _outputs[i], rows, Context(i, rows, training, step));
    }
}
