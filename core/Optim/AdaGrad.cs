// AdaGrad: per-parameter learning rates shrinking with the accumulated squared gradient; in place on the flat
// parameter buffer.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using DistTrain.Core.Kernels;

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
        ElementWise.Update(new AdaGradUpdate(learningRate, Epsilon, WeightDecay), parameters, gradient, _sum, default, default, Threads, AfterUpdate);
        CompleteStep();
    }
}

/// <summary>One element of <see cref="AdaGrad"/>'s step; s0 is the squared-gradient sum.</summary>
internal readonly struct AdaGradUpdate(float learningRate, float epsilon, float weightDecay) : IParameterUpdate
{
    private readonly float _lr = learningRate, _eps = epsilon, _wd = weightDecay;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Invoke(float w, float g, ref float sum, ref float s1, ref float s2)
    {
        if (_wd != 0f) g += _wd * w;
        sum += g * g;
        return w - _lr * (g / (MathF.Sqrt(sum) + _eps));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector128<float> Invoke(Vector128<float> w, Vector128<float> g, ref Vector128<float> sum,
        ref Vector128<float> s1, ref Vector128<float> s2)
    {
        if (_wd != 0f) g += _wd * w;
        sum += g * g;
        return w - _lr * (g / (Vector128.Sqrt(sum) + Vector128.Create(_eps)));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<float> Invoke(Vector256<float> w, Vector256<float> g, ref Vector256<float> sum,
        ref Vector256<float> s1, ref Vector256<float> s2)
    {
        if (_wd != 0f) g += _wd * w;
        sum += g * g;
        return w - _lr * (g / (Vector256.Sqrt(sum) + Vector256.Create(_eps)));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector512<float> Invoke(Vector512<float> w, Vector512<float> g, ref Vector512<float> sum,
        ref Vector512<float> s1, ref Vector512<float> s2)
    {
        if (_wd != 0f) g += _wd * w;
        sum += g * g;
        return w - _lr * (g / (Vector512.Sqrt(sum) + Vector512.Create(_eps)));
    }
}
