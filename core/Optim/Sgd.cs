// Stochastic gradient descent with optional heavy-ball or Nesterov momentum and L2 weight decay, in place on
// the flat parameter buffer. Variants are parameters (tinygrad style): momentum 0 is plain SGD.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using DistTrain.Core.Kernels;

namespace DistTrain.Core.Optim;

/// <summary>
/// SGD as torch.optim.SGD with dampening 0: g ← g + λw; b ← μb + g; g ← g + μb (Nesterov momentum, Sutskever
/// et al. 2013, as PyTorch implements it) or g ← b; w ← w − lr·g.
/// </summary>
public sealed class Sgd : OptimizerBase
{
    /// <summary>State key of the momentum buffer b (present only when μ &gt; 0).</summary>
    public const string MomentumKey = "momentum";

    private readonly float[] _momentumBuffer;

    public Sgd(int parameterCount, float momentum = 0f, bool nesterov = false, float weightDecay = 0f)
    {
        OptimizerGuard.RequireParameterCount(parameterCount);
        OptimizerGuard.RequireUnitInterval("momentum", momentum);
        OptimizerGuard.RequireNonNegative("weightDecay", weightDecay);
        if (nesterov && momentum == 0f)
            throw new UserInputException("optimizer.nesterov requires optimizer.momentum > 0, found 0");
        ParameterCount = parameterCount;
        Momentum = momentum;
        Nesterov = nesterov;
        WeightDecay = weightDecay;
        // PyTorch seeds b with g on the first step; with dampening 0, μ·0 + g == g exactly, so a zeroed buffer
        // gives the same first step and a checkpoint never has to record "buffer not yet created".
        _momentumBuffer = momentum > 0f ? new float[parameterCount] : [];
        if (momentum > 0f) StateBuffers[MomentumKey] = _momentumBuffer;
    }

    public override string Name => "sgd";
    public int ParameterCount { get; }
    public float Momentum { get; }
    public bool Nesterov { get; }
    public float WeightDecay { get; }

    public override void Step(Span<float> parameters, ReadOnlySpan<float> gradient, float learningRate)
    {
        OptimizerGuard.CheckStep(ParameterCount, parameters.Length, gradient.Length, learningRate);
        var update = new SgdUpdate(learningRate, Momentum, Nesterov, WeightDecay);
        ElementWise.Update(update, parameters, gradient, _momentumBuffer, default, default, Threads, AfterUpdate);
        CompleteStep();
    }
}

/// <summary>One element of <see cref="Sgd"/>'s step; s0 is the momentum buffer b (kept when μ &gt; 0).</summary>
internal readonly struct SgdUpdate(float learningRate, float momentum, bool nesterov, float weightDecay)
    : IParameterUpdate
{
    private readonly float _lr = learningRate, _mu = momentum, _wd = weightDecay;
    private readonly bool _useMomentum = momentum > 0f, _nesterov = nesterov;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Invoke(float w, float g, ref float b, ref float s1, ref float s2)
    {
        if (_wd != 0f) g += _wd * w;
        if (_useMomentum)
        {
            b = _mu * b + g;
            g = _nesterov ? g + _mu * b : b;
        }
        return w - _lr * g;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector128<float> Invoke(Vector128<float> w, Vector128<float> g, ref Vector128<float> b,
        ref Vector128<float> s1, ref Vector128<float> s2)
    {
        if (_wd != 0f) g += _wd * w;
        if (_useMomentum)
        {
            b = _mu * b + g;
            g = _nesterov ? g + _mu * b : b;
        }
        return w - _lr * g;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<float> Invoke(Vector256<float> w, Vector256<float> g, ref Vector256<float> b,
        ref Vector256<float> s1, ref Vector256<float> s2)
    {
        if (_wd != 0f) g += _wd * w;
        if (_useMomentum)
        {
            b = _mu * b + g;
            g = _nesterov ? g + _mu * b : b;
        }
        return w - _lr * g;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector512<float> Invoke(Vector512<float> w, Vector512<float> g, ref Vector512<float> b,
        ref Vector512<float> s1, ref Vector512<float> s2)
    {
        if (_wd != 0f) g += _wd * w;
        if (_useMomentum)
        {
            b = _mu * b + g;
            g = _nesterov ? g + _mu * b : b;
        }
        return w - _lr * g;
    }
}
