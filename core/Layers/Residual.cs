// A residual block x + f(x) (the Duplicate and Add modules of the backprop notes): the body f is a list of layers;
// when f changes the shape, the shortcut is a 1×1 convolution with the stride that maps the input to f's output shape
// (its parameters after the body's). Named as a PyTorch module with attributes `body` (an nn.Sequential) and
// `projection` would be: "3.body.0.weight", "3.projection.weight". The body's activations, gradients and scratch
// live in this block's scratch.
using DistTrain.Core.Model;

namespace DistTrain.Core.Layers;

public sealed class Residual : Layer
{
    public Residual(TensorShape input, IReadOnlyList<Layer> body, Conv2d? projection)
        : base(input, body[^1].OutputShape)
    {
        Body = body;
        Projection = projection;
    }

    public IReadOnlyList<Layer> Body { get; }
    public Conv2d? Projection { get; }
    public override int ParameterCount => Body.Sum(l => l.ParameterCount) + (Projection?.ParameterCount ?? 0);

    public override (double Forward, double Backward) FlopsPerSample(bool inputGradient)
    {
        double forward = 0, backward = 0;
        foreach (var layer in Body.Append(Projection).OfType<Layer>())
        {
            var (f, b) = layer.FlopsPerSample(inputGradient || layer != Body[0]);
            forward += f;
            backward += b;
        }
        return (forward, backward + (inputGradient ? InputWidth : 0));
    }

    // Per body layer: its output, its output gradient and its own scratch; then the projection's output and scratch
    // and the shortcut's input gradient. Offsets are per row count, so they are laid out for maxRows at each call.
    public override long ScratchFloats(int maxRows)
    {
        long total = 0;
        for (int i = 0; i < Body.Count; i++)
            total += 2L * maxRows * Body[i].OutputWidth + Body[i].ScratchFloats(maxRows);
        if (Projection is not null) total += (long)maxRows * Projection.OutputWidth + Projection.ScratchFloats(maxRows);
        return total + (long)maxRows * InputWidth;
    }

    public override void Forward(ReadOnlySpan<float> parameters, ReadOnlySpan<float> input, Span<float> output, int rows,
        in LayerContext context)
    {
        var scratch = context.Scratch;
        var map = new ScratchMap(this, context.MaxRows);
        ReadOnlySpan<float> x = input[..(rows * InputWidth)];
        for (int i = 0; i < Body.Count; i++)
        {
            var y = scratch.Slice(map.Output(i), rows * Body[i].OutputWidth);
            Body[i].Forward(parameters, x, y, rows, context.WithScratch(scratch.Slice(map.Scratch(i), map.ScratchLength(i))));
            x = y;
        }
        int n = rows * OutputWidth;
        if (Projection is null)
        {
            Kernels.ElementWise.Add(x, input[..n], output[..n]);
            return;
        }
        var shortcut = scratch.Slice(map.ProjectionOutput, n);
        Projection.Forward(parameters, input, shortcut, rows,
            context.WithScratch(scratch.Slice(map.ProjectionScratch, map.ProjectionScratchLength)));
        Kernels.ElementWise.Add(x, shortcut, output[..n]);
    }

    public override void Backward(ReadOnlySpan<float> parameters, ReadOnlySpan<float> input, ReadOnlySpan<float> output,
        Span<float> outputGradient, Span<float> inputGradient, Span<float> parameterGradient, int rows, in LayerContext context)
    {
        var scratch = context.Scratch;
        var map = new ScratchMap(this, context.MaxRows);
        int n = rows * OutputWidth;
        // dL/d f(x) = dL/dy: the body's last gradient buffer gets a copy (layers may overwrite their dY).
        outputGradient[..n].CopyTo(scratch.Slice(map.Gradient(Body.Count - 1), n));
        for (int i = Body.Count - 1; i >= 0; i--)
        {
            ReadOnlySpan<float> x = i == 0 ? input[..(rows * InputWidth)] : scratch.Slice(map.Output(i - 1), rows * Body[i - 1].OutputWidth);
            Span<float> dx = i == 0
                ? inputGradient.IsEmpty ? Span<float>.Empty : inputGradient[..(rows * InputWidth)]
                : scratch.Slice(map.Gradient(i - 1), rows * Body[i - 1].OutputWidth);
            Body[i].Backward(parameters, x, scratch.Slice(map.Output(i), rows * Body[i].OutputWidth),
                scratch.Slice(map.Gradient(i), rows * Body[i].OutputWidth), dx, parameterGradient, rows,
                context.WithScratch(scratch.Slice(map.Scratch(i), map.ScratchLength(i))));
        }
        if (Projection is null)
        {
            if (!inputGradient.IsEmpty)
                Kernels.ElementWise.Add(inputGradient[..n], outputGradient[..n], inputGradient[..n]);
            return;
        }
        int m = rows * InputWidth;
        var shortcutGradient = inputGradient.IsEmpty ? Span<float>.Empty : scratch.Slice(map.ShortcutGradient, m);
        Projection.Backward(parameters, input, scratch.Slice(map.ProjectionOutput, n), outputGradient[..n], shortcutGradient,
            parameterGradient, rows, context.WithScratch(scratch.Slice(map.ProjectionScratch, map.ProjectionScratchLength)));
        if (!inputGradient.IsEmpty)
            Kernels.ElementWise.Add(inputGradient[..m], shortcutGradient, inputGradient[..m]);
    }

    /// <summary>Where each part lives in a scratch sized for <c>maxRows</c> rows (found by walking the layout).</summary>
    private readonly struct ScratchMap(Residual block, int maxRows)
    {
        private long Offset(int part, int which)
        {
            long at = 0;
            for (int i = 0; i < block.Body.Count; i++)
            {
                long width = (long)maxRows * block.Body[i].OutputWidth;
                if (i == part) return at + which * width;
                at += 2 * width + block.Body[i].ScratchFloats(maxRows);
            }
            if (which == 0) return at;
            if (block.Projection is not null) at += (long)maxRows * block.Projection.OutputWidth;
            return which == 1 ? at : at + (block.Projection?.ScratchFloats(maxRows) ?? 0);
        }

        public int Output(int i) => (int)Offset(i, 0);
        public int Gradient(int i) => (int)Offset(i, 1);
        public int Scratch(int i) => (int)Offset(i, 2);
        public int ScratchLength(int i) => (int)block.Body[i].ScratchFloats(maxRows);
        public int ProjectionOutput => (int)Offset(-1, 0);
        public int ProjectionScratch => (int)Offset(-1, 1);
        public int ProjectionScratchLength => (int)(block.Projection?.ScratchFloats(maxRows) ?? 0);
        public int ShortcutGradient => (int)Offset(-1, 2);
    }
}
