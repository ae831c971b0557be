// nn.Dropout (inverted): in training each value is kept with probability 1 − p and scaled by 1/(1 − p), else zeroed;
// in evaluation the identity. The mask of a sample is a pure function of the run's seed, the step, the layer and the
// sample's index in its dataset — not of which worker, thread or shard computes it — so a step's result is the same
// for any number of workers. The mask (0 or the scale per value) stays in scratch for Backward.
using DistTrain.Core.Model;

namespace DistTrain.Core.Layers;

public sealed class Dropout(TensorShape shape, double p, ulong salt) : Layer(shape, shape)
{
    public double P { get; } = p;
    /// <summary>Distinguishes this layer's masks from another dropout layer's (its module path, hashed).</summary>
    public ulong Salt { get; } = salt;

    public override long ScratchFloats(int maxRows) => (long)maxRows * OutputWidth;

    public override void Forward(ReadOnlySpan<float> parameters, ReadOnlySpan<float> input, Span<float> output, int rows,
        in LayerContext context)
    {
        int width = OutputWidth;
        if (!context.Training || P == 0) { input[..(rows * width)].CopyTo(output); return; }
        var mask = context.Scratch[..(rows * width)];
        float scale = (float)(1.0 / (1.0 - P));
        // Keep when a uniform 24-bit draw u satisfies u ≥ p·2²⁴.
        uint threshold = (uint)Math.Min(Math.Ceiling(P * (1 << 24)), 1 << 24);
        for (int r = 0; r < rows; r++)
        {
            ulong key = Mix((ulong)context.Seed ^ Mix(Salt ^ Mix((ulong)context.Step * 0x9E3779B97F4A7C15UL ^ (ulong)(uint)context.Samples[r])));
            var m = mask.Slice(r * width, width);
            for (int j = 0; j < width; j++)
                m[j] = (uint)(Mix(key + (ulong)j) >> 40) >= threshold ? scale : 0f;
        }
        Kernels.ElementWise.Multiply(input[..(rows * width)], mask, output[..(rows * width)]);
    }

    public override void Backward(ReadOnlySpan<float> parameters, ReadOnlySpan<float> input, ReadOnlySpan<float> output,
        Span<float> outputGradient, Span<float> inputGradient, Span<float> parameterGradient, int rows, in LayerContext context)
    {
        if (inputGradient.IsEmpty) return;
        int n = rows * OutputWidth;
        if (!context.Training || P == 0) { outputGradient[..n].CopyTo(inputGradient); return; }
        Kernels.ElementWise.Multiply(outputGradient[..n], context.Scratch[..n], inputGradient[..n]);
    }

    /// <summary>SplitMix64's finaliser: a bijective mix whose outputs are uniform enough for masks.</summary>
    public static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
