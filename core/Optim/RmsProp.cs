// RMSProp: gradient divided by a running root-mean-square of recent gradients, optionally centered and with
// momentum; in place on the flat parameter buffer.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace DistTrain.Core.Optim;

/// <summary>
/// RMSProp (Hinton, Neural Networks for Machine Learning, lecture 6e) as torch.optim.RMSprop: g ← g + λw;
/// v ← αv + (1−α)g²; centered: a ← αa + (1−α)g, d = √(v − a²) + ε, else d = √v + ε;
/// momentum μ &gt; 0: b ← μb + g/d, w ← w − lr·b; else w ← w − lr·g/d.
/// </summary>
public sealed class RmsProp : OptimizerBase
{
    /// <summary>State key of the squared-gradient average v.</summary>
    public const string SquareAverageKey = "squareAverage";
    /// <summary>State key of the momentum buffer b (only when μ &gt; 0).</summary>
    public const string MomentumKey = "momentum";
    /// <summary>State key of the gradient average a (only when centered).</summary>
    public const string GradientAverageKey = "gradientAverage";

    private readonly float[] _squareAverage, _momentumBuffer, _gradientAverage;

    public RmsProp(int parameterCount, float alpha = 0.99f, float epsilon = 1e-8f, float momentum = 0f,
        bool centered = false, float weightDecay = 0f)
    {
        OptimizerGuard.RequireParameterCount(parameterCount);
        OptimizerGuard.RequireUnitInterval("alpha", alpha);
        OptimizerGuard.RequirePositive("epsilon", epsilon);
        OptimizerGuard.RequireUnitInterval("momentum", momentum);
        OptimizerGuard.RequireNonNegative("weightDecay", weightDecay);
        ParameterCount = parameterCount;
        Alpha = alpha;
        Epsilon = epsilon;
        Momentum = momentum;
        Centered = centered;
        WeightDecay = weightDecay;
        _squareAverage = new float[parameterCount];
        StateBuffers[SquareAverageKey] = _squareAverage;
        _momentumBuffer = momentum > 0f ? new float[parameterCount] : [];
        if (momentum > 0f) StateBuffers[MomentumKey] = _momentumBuffer;
        _gradientAverage = centered ? new float[parameterCount] : [];
        if (centered) StateBuffers[GradientAverageKey] = _gradientAverage;
    }

    public override string Name => "rmsprop";
    public int ParameterCount { get; }
    public float Alpha { get; }
    public float Epsilon { get; }
    public float Momentum { get; }
    public bool Centered { get; }
    public float WeightDecay { get; }

    public override void Step(Span<float> parameters, ReadOnlySpan<float> gradient, float learningRate)
    {
        OptimizerGuard.CheckStep(ParameterCount, parameters.Length, gradient.Length, learningRate);
        int n = parameters.Length, i = 0;
        ref float w = ref MemoryMarshal.GetReference(parameters);
        ref float g = ref MemoryMarshal.GetReference(gradient);
        ref float v = ref MemoryMarshal.GetArrayDataReference(_squareAverage);
        ref float b = ref MemoryMarshal.GetArrayDataReference(_momentumBuffer);
        ref float a = ref MemoryMarshal.GetArrayDataReference(_gradientAverage);
        float lr = learningRate, alpha = Alpha, oneMinusAlpha = 1f - Alpha, eps = Epsilon, mu = Momentum,
            wd = WeightDecay;
        bool useMomentum = mu > 0f, centered = Centered;

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
                var vi = alpha * Vector512.LoadUnsafe(ref v, k) + oneMinusAlpha * (d * d);
                vi.StoreUnsafe(ref v, k);
                if (centered)
                {
                    var ai = alpha * Vector512.LoadUnsafe(ref a, k) + oneMinusAlpha * d;
                    ai.StoreUnsafe(ref a, k);
                    // Rounding can push v − a² a hair below 0 where the true value is ~0; √ of that is NaN.
                    vi = Vector512.Max(vi - ai * ai, Vector512<float>.Zero);
                }
                var step = d / (Vector512.Sqrt(vi) + Vector512.Create(eps));
                if (useMomentum)
                {
                    step = mu * Vector512.LoadUnsafe(ref b, k) + step;
                    step.StoreUnsafe(ref b, k);
                }
                (wi - lr * step).StoreUnsafe(ref w, k);
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
                var vi = alpha * Vector256.LoadUnsafe(ref v, k) + oneMinusAlpha * (d * d);
                vi.StoreUnsafe(ref v, k);
                if (centered)
                {
                    var ai = alpha * Vector256.LoadUnsafe(ref a, k) + oneMinusAlpha * d;
                    ai.StoreUnsafe(ref a, k);
                    vi = Vector256.Max(vi - ai * ai, Vector256<float>.Zero);
                }
                var step = d / (Vector256.Sqrt(vi) + Vector256.Create(eps));
                if (useMomentum)
                {
                    step = mu * Vector256.LoadUnsafe(ref b, k) + step;
                    step.StoreUnsafe(ref b, k);
                }
                (wi - lr * step).StoreUnsafe(ref w, k);
            }
        }
        for (; i < n; i++)
        {
            ref float wi = ref Unsafe.Add(ref w, i);
            ref float vi = ref Unsafe.Add(ref v, i);
            float d = Unsafe.Add(ref g, i);
            if (wd != 0f) d += wd * wi;
            vi = alpha * vi + oneMinusAlpha * (d * d);
            float meanSquare = vi;
            if (centered)
            {
                ref float ai = ref Unsafe.Add(ref a, i);
                ai = alpha * ai + oneMinusAlpha * d;
                meanSquare = MathF.Max(meanSquare - ai * ai, 0f);
            }
            float step = d / (MathF.Sqrt(meanSquare) + eps);
            if (useMomentum)
            {
                ref float bi = ref Unsafe.Add(ref b, i);
                bi = mu * bi + step;
                step = bi;
            }
            wi -= lr * step;
        }
        CompleteStep();
    }
}
