// AdaGrad: per-parameter learning rates shrinking with the accumulated squared gradient; in place on the flat
// parameter buffer.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace DistTrain.Core.Optim;

/// <summary>
/// AdaGrad (Duchi et al. 2011) as torch.optim.Adagrad with lr_decay 0: g ← g + λw; s ← s + g²;
/// w ← w − lr·g / (√s + ε), s starting at the initial accumulator value.
/// </summary>
public sealed class AdaGrad : OptimizerBase
{
    /// <summary>State key of the squared-gradient sum s.</summary>
    public const string SumKey = "sum";

    private readonly float[] _sum;

    public AdaGrad(int parameterCount, float epsilon = 1e-10f, float weightDecay = 0f, float initialAccumulator = 0f)
    {
        OptimizerGuard.RequireParameterCount(parameterCount);
        OptimizerGuard.RequirePositive("epsilon", epsilon);
        OptimizerGuard.RequireNonNegative("weightDecay", weightDecay);
        OptimizerGuard.RequireNonNegative("initialAccumulator", initialAccumulator);
        ParameterCount = parameterCount;
        Epsilon = epsilon;
        WeightDecay = weightDecay;
        _sum = new float[parameterCount];
        _sum.AsSpan().Fill(initialAccumulator);
        StateBuffers[SumKey] = _sum;
    }

    public override string Name => "adagrad";
    public int ParameterCount { get; }
    public float Epsilon { get; }
    public float WeightDecay { get; }

    public override void Step(Span<float> parameters, ReadOnlySpan<float> gradient, float learningRate)
    {
        OptimizerGuard.CheckStep(ParameterCount, parameters.Length, gradient.Length, learningRate);
        int n = parameters.Length, i = 0;
        ref float w = ref MemoryMarshal.GetReference(parameters);
        ref float g = ref MemoryMarshal.GetReference(gradient);
        ref float s = ref MemoryMarshal.GetArrayDataReference(_sum);
        float lr = learningRate, eps = Epsilon, wd = WeightDecay;

        // Widest vector first, scalar tail (an overlapping last vector would update some elements twice); the
        // same unfused operations on every path, so an element's bits do not depend on where it falls.
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                nuint k = (nuint)i;
                var wi = Vector512.LoadUnsafe(ref w, k);
                var d = Vector512.LoadUnsafe(ref g, k);
                if (wd != 0f) d += wd * wi;
                var si = Vector512.LoadUnsafe(ref s, k) + d * d;
                si.StoreUnsafe(ref s, k);
                (wi - lr * (d / (Vector512.Sqrt(si) + Vector512.Create(eps)))).StoreUnsafe(ref w, k);
            }
        }
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                nuint k = (nuint)i;
                var wi = Vector256.LoadUnsafe(ref w, k);
                var d = Vector256.LoadUnsafe(ref g, k);
                if (wd != 0f) d += wd * wi;
                var si = Vector256.LoadUnsafe(ref s, k) + d * d;
                si.StoreUnsafe(ref s, k);
                (wi - lr * (d / (Vector256.Sqrt(si) + Vector256.Create(eps)))).StoreUnsafe(ref w, k);
            }
        }
        for (; i < n; i++)
        {
            ref float wi = ref Unsafe.Add(ref w, i);
            ref float si = ref Unsafe.Add(ref s, i);
            float d = Unsafe.Add(ref g, i);
            if (wd != 0f) d += wd * wi;
            si += d * d;
            wi -= lr * (d / (MathF.Sqrt(si) + eps));
        }
        CompleteStep();
    }
}
