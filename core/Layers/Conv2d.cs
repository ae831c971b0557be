// 2-D convolution, PyTorch's nn.Conv2d (square kernel, same stride and zero padding on both axes): weight
// [out, in, kh, kw] then bias [out] in the flat buffer. Activations are channels-last; a following element-wise
// activation is fused as in Linear (applied to the output in place; its derivative folded into dY in Backward).
using DistTrain.Core.Kernels;
using DistTrain.Core.Model;

namespace DistTrain.Core.Layers;

public sealed class Conv2d : Layer
{
    public Conv2d(ConvGeometry geometry, bool bias, Activation fusedActivation = Activation.None)
        : base(TensorShape.Image(geometry.InChannels, geometry.InHeight, geometry.InWidth),
            TensorShape.Image(geometry.OutChannels, geometry.OutHeight, geometry.OutWidth))
    {
        Geometry = geometry;
        HasBias = bias;
        FusedActivation = fusedActivation;
        if (!bias) _zeroBias = new float[geometry.OutChannels];
    }

    public ConvGeometry Geometry { get; }
    public bool HasBias { get; }
    public Activation FusedActivation { get; }
    public int WeightCount => Geometry.WeightCount;
    public int FanIn => Geometry.InChannels * Geometry.KernelHeight * Geometry.KernelWidth;
    public override int ParameterCount => WeightCount + (HasBias ? Geometry.OutChannels : 0);
    // Without a bias the kernel still adds one: zeros, and a per-thread place for the bias gradient it computes.
    public override long ScratchFloats(int maxRows) => Convolution.ScratchFloats(Geometry, maxRows) + (HasBias ? 0 : Geometry.OutChannels);
    private float[]? _zeroBias;

    public override (double Forward, double Backward) FlopsPerSample(bool inputGradient)
    {
        double macs = (double)Geometry.OutHeight * Geometry.OutWidth * Geometry.OutChannels * FanIn;
        return (2 * macs, 2 * macs * (inputGradient ? 2 : 1));
    }

    public override void Forward(ReadOnlySpan<float> parameters, ReadOnlySpan<float> input, Span<float> output, int rows,
        in LayerContext context)
    {
        var weight = parameters.Slice(ParameterOffset, WeightCount);
        var bias = HasBias ? parameters.Slice(ParameterOffset + WeightCount, Geometry.OutChannels) : _zeroBias;
        var y = output[..(rows * OutputWidth)];
        Convolution.Forward(Geometry, input[..(rows * InputWidth)], weight, bias, y, rows, KernelScratch(context.Scratch));
        if (FusedActivation != Activation.None) Activations.Forward(FusedActivation, y, y);
    }

    public override void Backward(ReadOnlySpan<float> parameters, ReadOnlySpan<float> input, ReadOnlySpan<float> output,
        Span<float> outputGradient, Span<float> inputGradient, Span<float> parameterGradient, int rows, in LayerContext context)
    {
        var dy = outputGradient[..(rows * OutputWidth)];
        Activations.Backward(FusedActivation, output[..(rows * OutputWidth)], dy, dy);
        var weight = parameters.Slice(ParameterOffset, WeightCount);
        var weightGradient = parameterGradient.Slice(ParameterOffset, WeightCount);
        var biasGradient = HasBias
            ? parameterGradient.Slice(ParameterOffset + WeightCount, Geometry.OutChannels)
            : context.Scratch[^Geometry.OutChannels..];
        Convolution.Backward(Geometry, input[..(rows * InputWidth)], weight, dy, weightGradient, biasGradient,
            inputGradient.IsEmpty ? Span<float>.Empty : inputGradient[..(rows * InputWidth)], rows, KernelScratch(context.Scratch));
    }

    private Span<float> KernelScratch(Span<float> scratch) => HasBias ? scratch : scratch[..^Geometry.OutChannels];
}
