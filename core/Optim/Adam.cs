// Adam and AdamW in one class (decoupled decay is a flag): bias-corrected first and second moment estimates,
// updated in one fused pass over the parameter, gradient and moment buffers.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace DistTrain.Core.Optim;

/// <summary>
/// Adam (Kingma &amp; Ba 2015) and AdamW (Loshchilov &amp; Hutter 2019) as torch.optim.Adam/AdamW: AdamW first
/// decays w ← w·(1 − lr·λ), Adam instead adds g ← g + λw; then m ← β1·m + (1−β1)g, v ← β2·v + (1−β2)g²,
/// w ← w − lr/(1−β1ᵗ) · m / (√v / √(1−β2ᵗ) + ε) with t the 1-based step.
/// </summary>
public sealed class Adam : OptimizerBase
{
    /// <summary>State key of the first moment m.</summary>
    public const string FirstMomentKey = "m";
    /// <summary>State key of the second moment v.</summary>
    public const string SecondMomentKey = "v";

    private readonly float[] _m, _v;

    public Adam(int parameterCount, float beta1 = 0.9f, float beta2 = 0.999f, float epsilon = 1e-8f,
        float weightDecay = 0f, bool decoupledWeightDecay = false)
    {
        OptimizerGuard.RequireParameterCount(parameterCount);
        OptimizerGuard.RequireUnitInterval("beta1", beta1);
        OptimizerGuard.RequireUnitInterval("beta2", beta2);
        OptimizerGuard.RequirePositive("epsilon", epsilon);
        OptimizerGuard.RequireNonNegative("weightDecay", weightDecay);
        ParameterCount = parameterCount;
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
        WeightDecay = weightDecay;
        DecoupledWeightDecay = decoupledWeightDecay;
        _m = new float[parameterCount];
        _v = new float[parameterCount];
        StateBuffers[FirstMomentKey] = _m;
        StateBuffers[SecondMomentKey] = _v;
    }

    public override string Name => DecoupledWeightDecay ? "adamw" : "adam";
    public int ParameterCount { get; }
    public float Beta1 { get; }
    public float Beta2 { get; }
    public float Epsilon { get; }
    public float WeightDecay { get; }
    /// <summary>true: AdamW's decoupled decay; false: Adam's L2 penalty added to the gradient.</summary>
    public bool DecoupledWeightDecay { get; }

    public override void Step(Span<float> parameters, ReadOnlySpan<float> gradient, float learningRate)
    {
        OptimizerGuard.CheckStep(ParameterCount, parameters.Length, gradient.Length, learningRate);
        int n = parameters.Length, i = 0;
        ref float w = ref MemoryMarshal.GetReference(parameters);
        ref float g = ref MemoryMarshal.GetReference(gradient);
        ref float m = ref MemoryMarshal.GetArrayDataReference(_m);
        ref float v = ref MemoryMarshal.GetArrayDataReference(_v);

        // Per-step scalars in double (β^t underflows gracefully; 1 − β2^t loses digits in float for small t).
        double t = StepCount + 1;
        float stepSize = (float)(learningRate / (1.0 - Math.Pow(Beta1, t)));
        float correction2Sqrt = (float)Math.Sqrt(1.0 - Math.Pow(Beta2, t));
        float decay = DecoupledWeightDecay ? (float)(1.0 - (double)learningRate * WeightDecay) : 1f;
        float l2 = DecoupledWeightDecay ? 0f : WeightDecay;
        float beta1 = Beta1, oneMinusBeta1 = 1f - Beta1, beta2 = Beta2, oneMinusBeta2 = 1f - Beta2, eps = Epsilon;
        bool decoupled = decay != 1f;

        // One fused pass: each element's w, g, m, v are read once and w, m, v written once (the buffers are
        // memory-bound, so six separate TensorPrimitives passes would cost ~3× the traffic). Widest vector
        // first, scalar tail (an overlapping last vector would update some elements twice); the same unfused
        // operations on every path, so an element's bits do not depend on where it falls.
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                nuint k = (nuint)i;
                var wi = Vector512.LoadUnsafe(ref w, k);
                var d = Vector512.LoadUnsafe(ref g, k);
                if (l2 != 0f) d += l2 * wi;
                if (decoupled) wi *= decay;
                var mi = beta1 * Vector512.LoadUnsafe(ref m, k) + oneMinusBeta1 * d;
                var vi = beta2 * Vector512.LoadUnsafe(ref v, k) + oneMinusBeta2 * (d * d);
                mi.StoreUnsafe(ref m, k);
                vi.StoreUnsafe(ref v, k);
                var denominator = Vector512.Sqrt(vi) / correction2Sqrt + Vector512.Create(eps);
                (wi - stepSize * (mi / denominator)).StoreUnsafe(ref w, k);
            }
        }
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                nuint k = (nuint)i;
                var wi = Vector256.LoadUnsafe(ref w, k);
                var d = Vector256.LoadUnsafe(ref g, k);
                if (l2 != 0f) d += l2 * wi;
                if (decoupled) wi *= decay;
                var mi = beta1 * Vector256.LoadUnsafe(ref m, k) + oneMinusBeta1 * d;
                var vi = beta2 * Vector256.LoadUnsafe(ref v, k) + oneMinusBeta2 * (d * d);
                mi.StoreUnsafe(ref m, k);
                vi.StoreUnsafe(ref v, k);
                var denominator = Vector256.Sqrt(vi) / correction2Sqrt + Vector256.Create(eps);
                (wi - stepSize * (mi / denominator)).StoreUnsafe(ref w, k);
            }
        }
        for (; i < n; i++)
        {
            ref float wi = ref Unsafe.Add(ref w, i);
            ref float mi = ref Unsafe.Add(ref m, i);
            ref float vi = ref Unsafe.Add(ref v, i);
            float d = Unsafe.Add(ref g, i);
            if (l2 != 0f) d += l2 * wi;
            if (decoupled) wi *= decay;
            mi = beta1 * mi + oneMinusBeta1 * d;
            vi = beta2 * vi + oneMinusBeta2 * (d * d);
            float denominator = MathF.Sqrt(vi) / correction2Sqrt + eps;
            wi -= stepSize * (mi / denominator);
        }
        CompleteStep();
    }
}
