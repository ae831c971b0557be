// Fully connected layer Y = act(X·Wᵀ + b), W stored [out × in] then b [out] (PyTorch's nn.Linear layout). A
// following element-wise activation is fused: bias and activation are applied row by row while the row is in L1,
// and in Backward the activation derivative is folded into dY before the two matrix products.
using System.Numerics.Tensors;
using DistTrain.Core.Kernels;

namespace DistTrain.Core.Layers;

public sealed class Linear(int inputWidth, int outputWidth, Activation fusedActivation = Activation.None)
    : Layer(inputWidth, outputWidth)
{
    public Activation FusedActivation { get; } = fusedActivation;
    public int WeightCount => InputWidth * OutputWidth;
    public override int ParameterCount => WeightCount + OutputWidth;

    public override bool ReadsGatheredInput => true;

    public override (double Forward, double Backward) FlopsPerSample(bool inputGradient) =>
        (2.0 * WeightCount, 2.0 * WeightCount * (inputGradient ? 2 : 1));

    public override void Forward(ReadOnlySpan<float> parameters, ReadOnlySpan<float> input, Span<float> output, int rows,
        in LayerContext context)
    {
        var weights = parameters.Slice(ParameterOffset, WeightCount);
        var bias = parameters.Slice(ParameterOffset + WeightCount, OutputWidth);
        int n = OutputWidth;
        if (context.InputRows.IsEmpty)
            Gemm.MultiplyABt(input[..(rows * InputWidth)], weights, output[..(rows * n)], rows, n, InputWidth, accumulate: false);
        else
            Gemm.MultiplyGatheredABt(context.InputBytes, context.InputRows[..rows], context.InputDivisor, weights,
                output[..(rows * n)], rows, n, InputWidth, accumulate: false);
        for (int r = 0; r < rows; r++)
        {
            var row = output.Slice(r * n, n);
            TensorPrimitives.Add(row, bias, row);
            Activations.Forward(FusedActivation, row, row);
        }
    }

    public override void Backward(ReadOnlySpan<float> parameters, ReadOnlySpan<float> input, ReadOnlySpan<float> output,
        Span<float> outputGradient, Span<float> inputGradient, Span<float> parameterGradient, int rows, in LayerContext context)
    {
        int n = OutputWidth, k = InputWidth;
        var dz = outputGradient[..(rows * n)];
        Activations.Backward(FusedActivation, output[..(rows * n)], dz, dz);

        var weightGradient = parameterGradient.Slice(ParameterOffset, WeightCount);
        var biasGradient = parameterGradient.Slice(ParameterOffset + WeightCount, n);
        if (context.InputRows.IsEmpty) Gemm.MultiplyAtB(dz, input[..(rows * k)], weightGradient, n, k, rows, accumulate: false);
        else
            Gemm.MultiplyAtGatheredB(dz, context.InputBytes, context.InputRows[..rows], context.InputDivisor, weightGradient,
                n, k, rows, accumulate: false);
        // db = Σ_rows dZ in a fixed order of blocks (ColumnSums), the same on every machine and thread count: a last
        // layer's bias gradient nearly cancels over the rows, and one long chain of adds loses its digits.
        ColumnSums.Compute(dz, n, biasGradient);

        if (!inputGradient.IsEmpty)
        {
            var weights = parameters.Slice(ParameterOffset, WeightCount);
            Gemm.MultiplyAB(dz, weights, inputGradient[..(rows * k)], rows, k, n, accumulate: false);
        }
    }
}
