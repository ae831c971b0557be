// A stand-alone element-wise activation (ReLU, Sigmoid, Tanh) for the places where it cannot be fused into the
// preceding Linear layer (e.g. directly on the input, or two activations in a row). No parameters.
using DistTrain.Core.Kernels;

namespace DistTrain.Core.Layers;

public class ActivationLayer(int width, Activation activation) : Layer(width, width)
{
    public Activation Activation { get; } = activation;

    public override void Forward(ReadOnlySpan<float> parameters, ReadOnlySpan<float> input, Span<float> output, int rows) =>
        Activations.Forward(Activation, input[..(rows * InputWidth)], output[..(rows * OutputWidth)]);

    public override void Backward(ReadOnlySpan<float> parameters, ReadOnlySpan<float> input, ReadOnlySpan<float> output,
        Span<float> outputGradient, Span<float> inputGradient, Span<float> parameterGradient, int rows)
    {
        if (!inputGradient.IsEmpty)
            Activations.Backward(Activation, output[..(rows * OutputWidth)], outputGradient[..(rows * OutputWidth)],
                inputGradient[..(rows * InputWidth)]);
    }
}

/// <summary>max(0, x).</summary>
public sealed class ReLU(int width) : ActivationLayer(width, Activation.ReLU);

/// <summary>1 / (1 + e^-x).</summary>
public sealed class Sigmoid(int width) : ActivationLayer(width, Activation.Sigmoid);

/// <summary>tanh(x).</summary>
public sealed class Tanh(int width) : ActivationLayer(width, Activation.Tanh);
