// Stochastic gradient descent with optional heavy-ball or Nesterov momentum and L2 weight decay, in place on
// the flat parameter buffer. Variants are parameters (tinygrad style): momentum 0 is plain SGD.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

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
        int n = parameters.Length, i = 0;
        ref float w = ref MemoryMarshal.GetReference(parameters);
        ref float g = ref MemoryMarshal.GetReference(gradient);
        ref float b = ref MemoryMarshal.GetArrayDataReference(_momentumBuffer);
        float lr = learningRate, mu = Momentum, wd = WeightDecay;
        bool useMomentum = mu > 0f, nesterov = Nesterov;

        // Widest vector first; the tail is a scalar loop (an overlapping last vector would apply the in-place
        // update twice). Vector and scalar paths use the same unfused operations, so every element gets the
        // same bits whichever path it lands on.
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                nuint k = (nuint)i;
                var wi = Vector512.LoadUnsafe(ref w, k);
                var d = Vector512.LoadUnsafe(ref g, k);
                if (wd != 0f) d += wd * wi;
                if (useMomentum)
                {
                    var bi = mu * Vector512.LoadUnsafe(ref b, k) + d;
                    bi.StoreUnsafe(ref b, k);
                    d = nesterov ? d + mu * bi : bi;
                }
                (wi - lr * d).StoreUnsafe(ref w, k);
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
                if (useMomentum)
                {
                    var bi = mu * Vector256.LoadUnsafe(ref b, k) + d;
                    bi.StoreUnsafe(ref b, k);
                    d = nesterov ? d + mu * bi : bi;
                }
                (wi - lr * d).StoreUnsafe(ref w, k);
            }
        }
        for (; i < n; i++)
        {
            ref float wi = ref Unsafe.Add(ref w, i);
            float d = Unsafe.Add(ref g, i);
            if (wd != 0f) d += wd * wi;
            if (useMomentum)
            {
                ref float bi = ref Unsafe.Add(ref b, i);
                bi = mu * bi + d;
                d = nesterov ? d + mu * bi : bi;
            }
            wi -= lr * d;
        }
        CompleteStep();
    }
}
