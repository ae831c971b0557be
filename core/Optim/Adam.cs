// Adam and AdamW in one class (decoupled decay is a flag): bias-corrected first and second moment estimates,
// updated in one fused pass over the parameter, gradient and moment buffers.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using DistTrain.Core.Kernels;

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
        // Per-step scalars in double (β^t underflows gracefully; 1 − β2^t loses digits in float for small t).
        double t = StepCount + 1;
        float stepSize = (float)(learningRate / (1.0 - Math.Pow(Beta1, t)));
        float correction2Sqrt = (float)Math.Sqrt(1.0 - Math.Pow(Beta2, t));
        float decay = DecoupledWeightDecay ? (float)(1.0 - (double)learningRate * WeightDecay) : 1f;
        float l2 = DecoupledWeightDecay ? 0f : WeightDecay;
        // One fused pass: each element's w, g, m, v are read once and w, m, v written once (the buffers are
        // memory-bound, so six separate TensorPrimitives passes would cost ~3× the traffic).
        var update = new AdamUpdate(Beta1, Beta2, Epsilon, stepSize, correction2Sqrt, decay, l2);
        ElementWise.Update(update, parameters, gradient, _m, _v, default, Threads, AfterUpdate);
        CompleteStep();
    }
}

/// <summary>
/// One element of <see cref="Adam"/>'s step t: s0 = m, s1 = v; stepSize = lr/(1−β1ᵗ), correction2Sqrt = √(1−β2ᵗ),
/// decay = 1 − lr·λ for AdamW (else 1), l2 = λ for Adam (else 0).
/// </summary>
internal readonly struct AdamUpdate(float beta1, float beta2, float epsilon, float stepSize, float correction2Sqrt,
    float decay, float l2) : IParameterUpdate
{
    private readonly float _beta1 = beta1, _oneMinusBeta1 = 1f - beta1, _beta2 = beta2, _oneMinusBeta2 = 1f - beta2,
        _eps = epsilon, _stepSize = stepSize, _correction2Sqrt = correction2Sqrt, _decay = decay, _l2 = l2;
    private readonly bool _decoupled = decay != 1f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Invoke(float w, float g, ref float m, ref float v, ref float s2)
    {
        if (_l2 != 0f) g += _l2 * w;
        if (_decoupled) w *= _decay;
        m = _beta1 * m + _oneMinusBeta1 * g;
        v = _beta2 * v + _oneMinusBeta2 * (g * g);
        var denominator = MathF.Sqrt(v) / _correction2Sqrt + _eps;
        return w - _stepSize * (m / denominator);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector128<float> Invoke(Vector128<float> w, Vector128<float> g, ref Vector128<float> m,
        ref Vector128<float> v, ref Vector128<float> s2)
    {
        if (_l2 != 0f) g += _l2 * w;
        if (_decoupled) w *= _decay;
        m = _beta1 * m + _oneMinusBeta1 * g;
        v = _beta2 * v + _oneMinusBeta2 * (g * g);
        var denominator = Vector128.Sqrt(v) / _correction2Sqrt + Vector128.Create(_eps);
        return w - _stepSize * (m / denominator);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<float> Invoke(Vector256<float> w, Vector256<float> g, ref Vector256<float> m,
        ref Vector256<float> v, ref Vector256<float> s2)
    {
        if (_l2 != 0f) g += _l2 * w;
        if (_decoupled) w *= _decay;
        m = _beta1 * m + _oneMinusBeta1 * g;
        v = _beta2 * v + _oneMinusBeta2 * (g * g);
        var denominator = Vector256.Sqrt(v) / _correction2Sqrt + Vector256.Create(_eps);
        return w - _stepSize * (m / denominator);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector512<float> Invoke(Vector512<float> w, Vector512<float> g, ref Vector512<float> m,
        ref Vector512<float> v, ref Vector512<float> s2)
    {
        if (_l2 != 0f) g += _l2 * w;
        if (_decoupled) w *= _decay;
        m = _beta1 * m + _oneMinusBeta1 * g;
        v = _beta2 * v + _oneMinusBeta2 * (g * g);
        var denominator = Vector512.Sqrt(v) / _correction2Sqrt + Vector512.Create(_eps);
        return w - _stepSize * (m / denominator);
    }
}
