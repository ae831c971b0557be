// nn.Flatten: a channels-last image [H][W][C] becomes the flat vector in PyTorch's [C][H][W] order, so the linear
// layer after it has the weight layout of the equivalent PyTorch model. A copy when C = 1 or H·W = 1.
using DistTrain.Core.Model;

namespace DistTrain.Core.Layers;

public sealed class Flatten(TensorShape input) : Layer(input, TensorShape.Flat(input.Size))
{
    private bool IsCopy => KeepsLayout(InputShape);

    /// <summary>True when a sample's channels-last and [C][H][W] orders are the same (not an image, C = 1 or
    /// H·W = 1): then flattening, and <see cref="ToChannelsLast"/>, only copy.</summary>
    public static bool KeepsLayout(TensorShape shape) => !shape.IsImage || shape.Channels == 1 || shape.Height * shape.Width == 1;

    public override void Forward(ReadOnlySpan<float> parameters, ReadOnlySpan<float> input, Span<float> output, int rows,
        in LayerContext context)
    {
        int n = rows * InputWidth;
        if (IsCopy) { input[..n].CopyTo(output); return; }
        int c = InputShape.Channels, hw = InputShape.Height * InputShape.Width, size = InputWidth;
        for (int r = 0; r < rows; r++)
        {
            var x = input.Slice(r * size, size);
            var y = output.Slice(r * size, size);
            for (int p = 0; p < hw; p++)
                for (int ch = 0; ch < c; ch++) y[ch * hw + p] = x[p * c + ch];
        }
    }

    public override void Backward(ReadOnlySpan<float> parameters, ReadOnlySpan<float> input, ReadOnlySpan<float> output,
        Span<float> outputGradient, Span<float> inputGradient, Span<float> parameterGradient, int rows, in LayerContext context)
    {
        if (inputGradient.IsEmpty) return;
        int n = rows * InputWidth;
        if (IsCopy) { outputGradient[..n].CopyTo(inputGradient); return; }
        int c = InputShape.Channels, hw = InputShape.Height * InputShape.Width, size = InputWidth;
        for (int r = 0; r < rows; r++)
        {
            var dy = outputGradient.Slice(r * size, size);
            var dx = inputGradient.Slice(r * size, size);
            for (int ch = 0; ch < c; ch++)
                for (int p = 0; p < hw; p++) dx[p * c + ch] = dy[ch * hw + p];
        }
    }

    /// <summary>PyTorch's [C][H][W] sample order to channels-last [H][W][C] (the network's input images).</summary>
    public static void ToChannelsLast(ReadOnlySpan<float> chw, Span<float> hwc, TensorShape shape)
    {
        int c = shape.Channels, hw = shape.Height * shape.Width;
        if (KeepsLayout(shape)) { chw[..shape.Size].CopyTo(hwc); return; }
        for (int ch = 0; ch < c; ch++)
            for (int p = 0; p < hw; p++) hwc[p * c + ch] = chw[ch * hw + p];
    }
}
