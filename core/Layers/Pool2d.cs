// Pooling over channels-last images: nn.MaxPool2d (padding never wins; the first maximum in scan order on ties; the
// winning positions kept in scratch for Backward), nn.AvgPool2d (count_include_pad, PyTorch's default) and global
// average pooling (nn.AdaptiveAvgPool2d(1): [C, H, W] → [C, 1, 1]). No parameters.
using System.Runtime.InteropServices;
using DistTrain.Core.Kernels;
using DistTrain.Core.Model;

namespace DistTrain.Core.Layers;

public sealed class MaxPool2d(ConvGeometry geometry) : Layer(
    TensorShape.Image(geometry.InChannels, geometry.InHeight, geometry.InWidth),
    TensorShape.Image(geometry.InChannels, geometry.OutHeight, geometry.OutWidth))
{
    public ConvGeometry Geometry { get; } = geometry;

    // The winning input position of every output value, as ints in the float scratch.
    public override long ScratchFloats(int maxRows) => (long)maxRows * OutputWidth;

    public override void Forward(ReadOnlySpan<float> parameters, ReadOnlySpan<float> input, Span<float> output, int rows,
        in LayerContext context) =>
        Pooling.MaxForward(Geometry, input[..(rows * InputWidth)], output[..(rows * OutputWidth)],
            MemoryMarshal.Cast<float, int>(context.Scratch)[..(rows * OutputWidth)], rows);

    public override void Backward(ReadOnlySpan<float> parameters, ReadOnlySpan<float> input, ReadOnlySpan<float> output,
        Span<float> outputGradient, Span<float> inputGradient, Span<float> parameterGradient, int rows, in LayerContext context)
    {
        if (inputGradient.IsEmpty) return;
        Pooling.MaxBackward(Geometry, outputGradient[..(rows * OutputWidth)],
            MemoryMarshal.Cast<float, int>(context.Scratch)[..(rows * OutputWidth)], inputGradient[..(rows * InputWidth)], rows);
    }
}

public sealed class AvgPool2d(ConvGeometry geometry) : Layer(
    TensorShape.Image(geometry.InChannels, geometry.InHeight, geometry.InWidth),
    TensorShape.Image(geometry.InChannels, geometry.OutHeight, geometry.OutWidth))
{
    public ConvGeometry Geometry { get; } = geometry;

    public override void Forward(ReadOnlySpan<float> parameters, ReadOnlySpan<float> input, Span<float> output, int rows,
        in LayerContext context) =>
        Pooling.AvgForward(Geometry, input[..(rows * InputWidth)], output[..(rows * OutputWidth)], rows);

    public override void Backward(ReadOnlySpan<float> parameters, ReadOnlySpan<float> input, ReadOnlySpan<float> output,
        Span<float> outputGradient, Span<float> inputGradient, Span<float> parameterGradient, int rows, in LayerContext context)
    {
        if (!inputGradient.IsEmpty)
            Pooling.AvgBackward(Geometry, outputGradient[..(rows * OutputWidth)], inputGradient[..(rows * InputWidth)], rows);
    }
}

public sealed class GlobalAvgPool(TensorShape input) : Layer(input, TensorShape.Image(input.Channels, 1, 1))
{
    public override void Forward(ReadOnlySpan<float> parameters, ReadOnlySpan<float> input, Span<float> output, int rows,
        in LayerContext context) =>
        Pooling.GlobalAvgForward(input[..(rows * InputWidth)], output[..(rows * OutputWidth)], rows, InputShape.Height,
            InputShape.Width, InputShape.Channels);

    public override void Backward(ReadOnlySpan<float> parameters, ReadOnlySpan<float> input, ReadOnlySpan<float> output,
        Span<float> outputGradient, Span<float> inputGradient, Span<float> parameterGradient, int rows, in LayerContext context)
    {
        if (!inputGradient.IsEmpty)
            Pooling.GlobalAvgBackward(outputGradient[..(rows * OutputWidth)], inputGradient[..(rows * InputWidth)], rows,
                InputShape.Height, InputShape.Width, InputShape.Channels);
    }
}
