// The layer contract. A layer owns a slice of the network's flat parameter buffer (and the same slice of the
// gradient buffer); Forward maps a row-major batch [rows × InputWidth] to [rows × OutputWidth]; Backward writes
// this batch's summed parameter gradient into its slice (overwriting) and, when asked, the input gradient.
namespace DistTrain.Core.Layers;

public abstract class Layer
{
    protected Layer(int inputWidth, int outputWidth)
    {
        InputWidth = inputWidth;
        OutputWidth = outputWidth;
    }

    public int InputWidth { get; }
    public int OutputWidth { get; }
    /// <summary>Offset of this layer's slice in the flat parameter/gradient buffers.</summary>
    public int ParameterOffset { get; internal set; }
    public virtual int ParameterCount => 0;

    /// <summary>Y = f(X) for <paramref name="rows"/> rows.</summary>
    public abstract void Forward(ReadOnlySpan<float> parameters, ReadOnlySpan<float> input, Span<float> output, int rows);

    /// <summary>
    /// Given X, Y = f(X) and dL/dY, writes dL/dθ (summed over rows) into <paramref name="parameterGradient"/> and,
    /// unless it is empty, dL/dX into <paramref name="inputGradient"/>. <paramref name="outputGradient"/> is scratch:
    /// a layer may overwrite it.
    /// </summary>
    public abstract void Backward(ReadOnlySpan<float> parameters, ReadOnlySpan<float> input, ReadOnlySpan<float> output,
        Span<float> outputGradient, Span<float> inputGradient, Span<float> parameterGradient, int rows);
}
