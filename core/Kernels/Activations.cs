// Element-wise activation kernels. Forward passes run in place on a layer's output; backward passes turn the
// upstream gradient dY into dZ = dY ⊙ f'(Z) using only the activation's output Y, so the pre-activation never
// has to be kept. ReLU and every derivative are operators on the ElementWise loops; sigmoid and tanh forward are
// TensorPrimitives' (their vectorised exp is nothing to copy by hand).
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
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

    /// <summary>
    /// y = f(x); x and y may be the same span. ReLU(x) = max(x, +0) with IEEE maximum: ReLU(NaN) = NaN,
    /// ReLU(−0) = +0, ReLU(−∞) = +0. sigmoid(+∞) = 1, sigmoid(−∞) = 0; tanh(±∞) = ±1; both keep NaN.
    /// </summary>
    public static void Forward(Activation activation, ReadOnlySpan<float> x, Span<float> y)
    {
        // TensorPrimitives' sigmoid and tanh refuse empty spans; nothing to do is not an error here.
        if (x.IsEmpty) return;
        switch (activation)
        {
            case Activation.None: if (!x.Overlaps(y)) x.CopyTo(y); break;
            case Activation.ReLU: ElementWise.Map<ReluOperator>(x, y); break;
            // TensorPrimitives.Sigmoid is 1/(1+e^-x): e^-x overflows to +inf for very negative x and the result is a
            // clean 0, never NaN.
            case Activation.Sigmoid: TensorPrimitives.Sigmoid(x, y); break;
            case Activation.Tanh: TensorPrimitives.Tanh(x, y); break;
        }
    }

    /// <summary>
    /// dz = dy ⊙ f'(·) expressed through the output y; dy and dz may be the same span. ReLU: dz = dy where y &gt; 0,
    /// else +0 (so y = NaN or −0 gives +0 whatever dy is); sigmoid: dz = dy·(y − y·y); tanh: dz = dy·(1 − y·y).
    /// </summary>
    public static void Backward(Activation activation, ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dz)
    {
        switch (activation)
        {
            case Activation.None: if (!dy.Overlaps(dz)) dy.CopyTo(dz); break;
            case Activation.ReLU: ElementWise.Map<ReluDerivativeOperator>(y, dy, dz); break;
            case Activation.Sigmoid: ElementWise.Map<SigmoidDerivativeOperator>(y, dy, dz); break;
            case Activation.Tanh: ElementWise.Map<TanhDerivativeOperator>(y, dy, dz); break;
        }
    }
}

/// <summary>max(x, +0), NaN propagating (Vector*.Max and MathF.Max are both IEEE 754:2019 maximum).</summary>
internal readonly struct ReluOperator : IUnaryOperator
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Invoke(float x) => MathF.Max(x, 0f);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Invoke(Vector128<float> x) => Vector128.Max(x, Vector128<float>.Zero);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Invoke(Vector256<float> x) => Vector256.Max(x, Vector256<float>.Zero);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Invoke(Vector512<float> x) => Vector512.Max(x, Vector512<float>.Zero);
}

/// <summary>(y, dy) → y &gt; 0 ? dy : +0; the vector form masks dy's bits, which gives the same bits.</summary>
internal readonly struct ReluDerivativeOperator : IBinaryOperator
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Invoke(float y, float dy) => y > 0f ? dy : 0f;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Invoke(Vector128<float> y, Vector128<float> dy) =>
        dy & Vector128.GreaterThan(y, Vector128<float>.Zero);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Invoke(Vector256<float> y, Vector256<float> dy) =>
        dy & Vector256.GreaterThan(y, Vector256<float>.Zero);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Invoke(Vector512<float> y, Vector512<float> dy) =>
        dy & Vector512.GreaterThan(y, Vector512<float>.Zero);
}

/// <summary>(y, dy) → dy·(y − y·y), σ' = σ(1 − σ) written without the extra rounding of 1 − y.</summary>
internal readonly struct SigmoidDerivativeOperator : IBinaryOperator
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Invoke(float y, float dy) => dy * (y - y * y);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Invoke(Vector128<float> y, Vector128<float> dy) => dy * (y - y * y);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Invoke(Vector256<float> y, Vector256<float> dy) => dy * (y - y * y);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Invoke(Vector512<float> y, Vector512<float> dy) => dy * (y - y * y);
}

/// <summary>(y, dy) → dy·(1 − y·y), tanh' = 1 − tanh².</summary>
internal readonly struct TanhDerivativeOperator : IBinaryOperator
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Invoke(float y, float dy) => dy * (1f - y * y);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Invoke(Vector128<float> y, Vector128<float> dy) => dy * (Vector128<float>.One - y * y);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Invoke(Vector256<float> y, Vector256<float> dy) => dy * (Vector256<float>.One - y * y);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Invoke(Vector512<float> y, Vector512<float> dy) => dy * (Vector512<float>.One - y * y);
}
