// A stand-alone element-wise activation (ReLU, Sigmoid, Tanh) for the places where it cannot be fused into the
// preceding Linear layer (e.g. directly on the input, or two activations in a row). No parameters.
using DistTrain.Core.Kernels;
using DistTrain.Core.Model;

namespace DistTrain.Core.Layers;

public class ActivationLayer(TensorShape shape, Activation activation) : Layer(shape, shape)
{
    public Activation Activation { get; } = activation;

    public override void Forward(ReadOnlySpan<float> parameters, ReadOnlySpan<float> input, Span<float> output, int rows,
        in LayerContext context) =>
        Activations.Forward(Activation, input[..(rows * InputWidth)], output[..(rows * OutputWidth)]);

    public override void Backward(ReadOnlySpan<float> parameters, ReadOnlySpan<float> input, ReadOnlySpan<float> output,
        Span<float> outputGradient, Span<float> inputGradient, Span<float> parameterGradient, int rows, in LayerContext context)
    {
        if (!inputGradient.IsEmpty)
            Activations.Backward(Activation, output[..(rows * OutputWidth)], outputGradient[..(rows * OutputWidth)],
                inputGradient[..(rows * InputWidth)]);
    }
}

/// <summary>max(0, x).</summary>
public sealed class ReLU(int width) : ActivationLayer(TensorShape.Flat(width), Activation.ReLU);

/// <summary>1 / (1 + e^-x).</summary>
public sealed class Sigmoid(int width) : ActivationLayer(TensorShape.Flat(width), Activation.Sigmoid);

/// <summary>tanh(x).</summary>
public sealed class Tanh(int width) : ActivationLayer(TensorShape.Flat(width), Activation.Tanh);
