// Element-wise activation kernels. Forward passes run in place on a layer's output; backward passes turn the
// upstream gradient dY into dZ = dY ⊙ f'(Z) using only the activation's output Y, so the pre-activation never
// has to be kept. TensorPrimitives covers the forward ops; the derivatives are small fused SIMD loops.
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace DistTrain.Core.Kernels;

public enum Activation { None, ReLU, Sigmoid, Tanh }

public static class Activations
{
    public static Activation Parse(string name) => name.ToLowerInvariant() switch
    {
        "relu" => Activation.ReLU,
        "sigmoid" => Activation.Sigmoid,
        "tanh" => Activation.Tanh,
        _ => throw new ArgumentException($"'{name}' is not an activation", nameof(name)),
    };

    /// <summary>y = f(x); x and y may be the same span.</summary>
    public static void Forward(Activation activation, ReadOnlySpan<float> x, Span<float> y)
    {
        switch (activation)
        {
            case Activation.None: if (!x.Overlaps(y)) x.CopyTo(y); break;
            case Activation.ReLU: TensorPrimitives.Max(x, 0f, y); break;
            // TensorPrimitives.Sigmoid is 1/(1+e^-x): e^-x overflows to +inf for very negative x and the result is a
            // clean 0, never NaN.
            case Activation.Sigmoid: TensorPrimitives.Sigmoid(x, y); break;
            case Activation.Tanh: TensorPrimitives.Tanh(x, y); break;
        }
    }

    /// <summary>dz = dy ⊙ f'(·) expressed through the output y; dy and dz may be the same span.</summary>
    public static void Backward(Activation activation, ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dz)
    {
        switch (activation)
        {
            case Activation.None: if (!dy.Overlaps(dz)) dy.CopyTo(dz); break;
            case Activation.ReLU: ReluBackward(y, dy, dz); break;
            case Activation.Sigmoid: SigmoidBackward(y, dy, dz); break;
            case Activation.Tanh: TanhBackward(y, dy, dz); break;
        }
    }

    // Each loop: widest accelerated vector first, then a scalar tail for the last length % width elements.
    private static void ReluBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dz)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i <= y.Length - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                var mask = Vector512.GreaterThan(Vector512.Create(y[i..]), Vector512<float>.Zero);
                (Vector512.Create(dy[i..]) & mask.AsSingle()).CopyTo(dz[i..]);
            }
        else if (Vector256.IsHardwareAccelerated)
            for (; i <= y.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var mask = Vector256.GreaterThan(Vector256.Create(y[i..]), Vector256<float>.Zero);
                (Vector256.Create(dy[i..]) & mask.AsSingle()).CopyTo(dz[i..]);
            }
        for (; i < y.Length; i++) dz[i] = y[i] > 0 ? dy[i] : 0f;
    }

    private static void SigmoidBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dz)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i <= y.Length - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                var v = Vector512.Create(y[i..]);
                (Vector512.Create(dy[i..]) * (v - v * v)).CopyTo(dz[i..]);
            }
        else if (Vector256.IsHardwareAccelerated)
            for (; i <= y.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var v = Vector256.Create(y[i..]);
                (Vector256.Create(dy[i..]) * (v - v * v)).CopyTo(dz[i..]);
            }
        for (; i < y.Length; i++) dz[i] = dy[i] * (y[i] - y[i] * y[i]);
    }

    private static void TanhBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dz)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i <= y.Length - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                var v = Vector512.Create(y[i..]);
                (Vector512.Create(dy[i..]) * (Vector512<float>.One - v * v)).CopyTo(dz[i..]);
            }
        else if (Vector256.IsHardwareAccelerated)
            for (; i <= y.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var v = Vector256.Create(y[i..]);
                (Vector256.Create(dy[i..]) * (Vector256<float>.One - v * v)).CopyTo(dz[i..]);
            }
        for (; i < y.Length; i++) dz[i] = dy[i] * (1f - y[i] * y[i]);
    }
}
