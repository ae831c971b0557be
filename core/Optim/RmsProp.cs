// RMSProp: gradient divided by a running root-mean-square of recent gradients, optionally centered and with
// momentum; in place on the flat parameter buffer.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using DistTrain.Core.Kernels;

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
        var update = new RmsPropUpdate(learningRate, Alpha, Epsilon, Momentum, Centered, WeightDecay);
        ElementWise.Update(update, parameters, gradient, _squareAverage, _gradientAverage, _momentumBuffer, Threads, AfterUpdate);
        CompleteStep();
    }
}

/// <summary>One element of <see cref="RmsProp"/>'s step: s0 = v, s1 = a (kept when centered), s2 = b (when μ &gt; 0).</summary>
internal readonly struct RmsPropUpdate(float learningRate, float alpha, float epsilon, float momentum, bool centered,
    float weightDecay) : IParameterUpdate
{
    private readonly float _lr = learningRate, _alpha = alpha, _oneMinusAlpha = 1f - alpha, _eps = epsilon,
        _mu = momentum, _wd = weightDecay;
    private readonly bool _useMomentum = momentum > 0f, _centered = centered;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Invoke(float w, float g, ref float v, ref float a, ref float b)
    {
        if (_wd != 0f) g += _wd * w;
        v = _alpha * v + _oneMinusAlpha * (g * g);
        var meanSquare = v;
        if (_centered)
        {
            a = _alpha * a + _oneMinusAlpha * g;
            // Rounding can push v − a² a hair below 0 where the true value is ~0; √ of that is NaN.
            meanSquare = MathF.Max(v - a * a, 0f);
        }
        var step = g / (MathF.Sqrt(meanSquare) + _eps);
        if (_useMomentum)
        {
            b = _mu * b + step;
            step = b;
        }
        return w - _lr * step;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector128<float> Invoke(Vector128<float> w, Vector128<float> g, ref Vector128<float> v,
        ref Vector128<float> a, ref Vector128<float> b)
    {
        if (_wd != 0f) g += _wd * w;
        v = _alpha * v + _oneMinusAlpha * (g * g);
        var meanSquare = v;
        if (_centered)
        {
            a = _alpha * a + _oneMinusAlpha * g;
            meanSquare = Vector128.Max(v - a * a, Vector128<float>.Zero);
        }
        var step = g / (Vector128.Sqrt(meanSquare) + Vector128.Create(_eps));
        if (_useMomentum)
        {
            b = _mu * b + step;
            step = b;
        }
        return w - _lr * step;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<float> Invoke(Vector256<float> w, Vector256<float> g, ref Vector256<float> v,
        ref Vector256<float> a, ref Vector256<float> b)
    {
        if (_wd != 0f) g += _wd * w;
        v = _alpha * v + _oneMinusAlpha * (g * g);
        var meanSquare = v;
        if (_centered)
        {
            a = _alpha * a + _oneMinusAlpha * g;
            meanSquare = Vector256.Max(v - a * a, Vector256<float>.Zero);
        }
        var step = g / (Vector256.Sqrt(meanSquare) + Vector256.Create(_eps));
        if (_useMomentum)
        {
            b = _mu * b + step;
            step = b;
        }
        return w - _lr * step;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector512<float> Invoke(Vector512<float> w, Vector512<float> g, ref Vector512<float> v,
        ref Vector512<float> a, ref Vector512<float> b)
    {
        if (_wd != 0f) g += _wd * w;
        v = _alpha * v + _oneMinusAlpha * (g * g);
        var meanSquare = v;
        if (_centered)
        {
            a = _alpha * a + _oneMinusAlpha * g;
            meanSquare = Vector512.Max(v - a * a, Vector512<float>.Zero);
        }
        var step = g / (Vector512.Sqrt(meanSquare) + Vector512.Create(_eps));
        if (_useMomentum)
        {
            b = _mu * b + step;
            step = b;
        }
        return w - _lr * step;
    }
}
