// The layer contract. A layer owns a slice of the network's flat parameter buffer (and the same slice of the
// gradient buffer); Forward maps a batch [rows × InputWidth] to [rows × OutputWidth] (images channels-last per
// sample); Backward writes this batch's summed parameter gradient into its slice (overwriting) and, when asked, the
// input gradient. Per-thread state a layer needs between the two passes (im2col buffers, max-pool positions, dropout
// masks, batch statistics) lives in the scratch the workspace gives it, sized by ScratchFloats.
using DistTrain.Core.Kernels;
using DistTrain.Core.Model;

namespace DistTrain.Core.Layers;

/// <summary>What a pass knows beyond the tensors: the layer's scratch and, for dropout, the seed, step and samples.</summary>
public readonly ref struct LayerContext(Span<float> scratch, int maxRows, bool training, long seed, long step,
    ReadOnlySpan<int> samples, ReadOnlySpan<byte> inputBytes = default, ReadOnlySpan<int> inputRows = default,
    ByteDivisor? inputDivisor = null)
{
    /// <summary>This layer's per-thread scratch (<see cref="Layer.ScratchFloats"/> floats), kept from Forward to Backward.</summary>
    public Span<float> Scratch { get; } = scratch;
    /// <summary>The rows the scratch was sized for (a pass may have fewer).</summary>
    public int MaxRows { get; } = maxRows;
    /// <summary>Training (dropout on, batch norm on the batch's statistics) or evaluation.</summary>
    public bool Training { get; } = training;
    public long Seed { get; } = seed;
    public long Step { get; } = step;
    /// <summary>Each row's index in its dataset (dropout masks depend on it, not on the row's position).</summary>
    public ReadOnlySpan<int> Samples { get; } = samples;

    /// <summary>
    /// Empty, or (only for a layer whose <see cref="Layer.ReadsGatheredInput"/> is true) the pass's input is not the
    /// input span but rows of this byte matrix (the dataset's images), row r being its row InputRows[r] and each byte
    /// read as byte / <see cref="InputDivisor"/>: the first layer reads the batch where the dataset holds it.
    /// </summary>
    public ReadOnlySpan<byte> InputBytes { get; } = inputBytes;
    public ReadOnlySpan<int> InputRows { get; } = inputRows;
    public ByteDivisor InputDivisor { get; } = inputDivisor ?? ByteDivisor.One;

    /// <summary>The same pass for a layer inside this one (its own input, never the dataset's rows).</summary>
    public LayerContext WithScratch(Span<float> scratch) => new(scratch, MaxRows, Training, Seed, Step, Samples);
}

public abstract class Layer
{
    protected Layer(TensorShape input, TensorShape output)
    {
        InputShape = input;
        OutputShape = output;
    }

    protected Layer(int inputWidth, int outputWidth) : this(TensorShape.Flat(inputWidth), TensorShape.Flat(outputWidth)) { }

    public TensorShape InputShape { get; }
    public TensorShape OutputShape { get; }
    public int InputWidth => InputShape.Size;
    public int OutputWidth => OutputShape.Size;
    /// <summary>Offset of this layer's slice in the flat parameter/gradient buffers.</summary>
    public int ParameterOffset { get; internal set; }
    public virtual int ParameterCount => 0;

    /// <summary>Floats of per-thread scratch for batches of up to <paramref name="maxRows"/> rows.</summary>
    public virtual long ScratchFloats(int maxRows) => 0;

    /// <summary>Forward and Backward can take their input as the dataset's byte rows named by the context
    /// (<see cref="LayerContext.InputRows"/>), so the first layer needs no copy of the batch.</summary>
    public virtual bool ReadsGatheredInput => false;

    /// <summary>Floating-point operations of one sample's forward pass and of its backward pass (2 per multiply-add).</summary>
    public virtual (double Forward, double Backward) FlopsPerSample(bool inputGradient) => (0, 0);

    /// <summary>Y = f(X) for <paramref name="rows"/> rows.</summary>
    public abstract void Forward(ReadOnlySpan<float> parameters, ReadOnlySpan<float> input, Span<float> output, int rows,
        in LayerContext context);

    /// <summary>
    /// Given X, Y = f(X) and dL/dY, writes dL/dθ (summed over rows) into <paramref name="parameterGradient"/> and,
    /// unless it is empty, dL/dX into <paramref name="inputGradient"/>. <paramref name="outputGradient"/> is scratch:
    /// a layer may overwrite it.
    /// </summary>
    public abstract void Backward(ReadOnlySpan<float> parameters, ReadOnlySpan<float> input, ReadOnlySpan<float> output,
        Span<float> outputGradient, Span<float> inputGradient, Span<float> parameterGradient, int rows, in LayerContext context);
}
