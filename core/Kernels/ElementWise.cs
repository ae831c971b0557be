// The shared SIMD loops of the element-wise kernels (activations, optimizer steps), generic over operator structs
// as in TensorPrimitives: an operator states one element's arithmetic at each width, a loop here walks the spans.
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DistTrain.Core.Kernels;

// Contract of every operator below: its four Invoke overloads do the same IEEE operations per element in the same
// order (never a fused multiply-add in one and a multiply then an add in another; the JIT does not contract a*b + c
// on its own), so an element gets the same bits whichever width the loop hands it to.

/// <summary>y = f(x), one element or one vector of lanes.</summary>
internal interface IUnaryOperator
{
    static abstract float Invoke(float x);
    static abstract Vector128<float> Invoke(Vector128<float> x);
    static abstract Vector256<float> Invoke(Vector256<float> x);
    static abstract Vector512<float> Invoke(Vector512<float> x);
}

/// <summary>z = f(x, y), one element or one vector of lanes.</summary>
internal interface IBinaryOperator
{
    static abstract float Invoke(float x, float y);
    static abstract Vector128<float> Invoke(Vector128<float> x, Vector128<float> y);
    static abstract Vector256<float> Invoke(Vector256<float> x, Vector256<float> y);
    static abstract Vector512<float> Invoke(Vector512<float> x, Vector512<float> y);
}

/// <summary>
/// Told which parameters an optimizer step has just written (ElementWise.Update): a pass that reads the new weights
/// (an encoding for the wire) runs on each piece while it is in cache instead of over the whole vector afterwards.
/// </summary>
public abstract class UpdatedPieces
{
    /// <summary>parameters[start .. start + count) hold their new values; may be called on several threads at once.</summary>
    public abstract void Updated(int start, int count);
}

/// <summary>
/// One optimizer step for one parameter w with gradient g and up to three state values (moments, momentum):
/// returns the new w and updates the states in place. The hyper-parameters of the step are the struct's fields.
/// A state the optimizer does not keep arrives as 0 and whatever is left in it is dropped.
/// </summary>
internal interface IParameterUpdate
{
    float Invoke(float w, float g, ref float s0, ref float s1, ref float s2);
    Vector128<float> Invoke(Vector128<float> w, Vector128<float> g, ref Vector128<float> s0,
        ref Vector128<float> s1, ref Vector128<float> s2);
    Vector256<float> Invoke(Vector256<float> w, Vector256<float> g, ref Vector256<float> s0,
        ref Vector256<float> s1, ref Vector256<float> s2);
    Vector512<float> Invoke(Vector512<float> w, Vector512<float> g, ref Vector512<float> s0,
        ref Vector512<float> s1, ref Vector512<float> s2);
}

/// <summary>x + y.</summary>
internal readonly struct AddOperator : IBinaryOperator
{
    public static float Invoke(float x, float y) => x + y;
    public static Vector128<float> Invoke(Vector128<float> x, Vector128<float> y) => x + y;
    public static Vector256<float> Invoke(Vector256<float> x, Vector256<float> y) => x + y;
    public static Vector512<float> Invoke(Vector512<float> x, Vector512<float> y) => x + y;
}

/// <summary>x · y.</summary>
internal readonly struct MultiplyOperator : IBinaryOperator
{
    public static float Invoke(float x, float y) => x * y;
    public static Vector128<float> Invoke(Vector128<float> x, Vector128<float> y) => x * y;
    public static Vector256<float> Invoke(Vector256<float> x, Vector256<float> y) => x * y;
    public static Vector512<float> Invoke(Vector512<float> x, Vector512<float> y) => x * y;
}

/// <summary>
/// The loops. Each runs the widest accelerated width over the bulk (Vector512, else Vector256, else Vector128,
/// else scalar), then the tail of n mod width elements with at most one step of each narrower accelerated width
/// and at most three scalar elements: 16 + 8 + 4 + 3 covers any remainder below 16. No element is touched twice
/// (the overlapping last vector of TensorPrimitives would apply an in-place update twice), and by the operator
/// contract each element's bits do not depend on the width that took it, so every path gives the same result.
/// </summary>
internal static class ElementWise
{
    /// <summary>destination[i] = f(x[i]); destination may be x itself, but no other overlap.</summary>
    public static void Map<TOperator>(ReadOnlySpan<float> x, Span<float> destination)
        where TOperator : IUnaryOperator
    {
        CheckDestination(x, destination);
        ref float xs = ref MemoryMarshal.GetReference(x);
        ref float ds = ref MemoryMarshal.GetReference(destination);
        nuint n = (nuint)x.Length, i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i + (nuint)Vector512<float>.Count <= n; i += (nuint)Vector512<float>.Count)
                TOperator.Invoke(Vector512.LoadUnsafe(ref xs, i)).StoreUnsafe(ref ds, i);
        if (Vector256.IsHardwareAccelerated)
            for (; i + (nuint)Vector256<float>.Count <= n; i += (nuint)Vector256<float>.Count)
                TOperator.Invoke(Vector256.LoadUnsafe(ref xs, i)).StoreUnsafe(ref ds, i);
        if (Vector128.IsHardwareAccelerated)
            for (; i + (nuint)Vector128<float>.Count <= n; i += (nuint)Vector128<float>.Count)
                TOperator.Invoke(Vector128.LoadUnsafe(ref xs, i)).StoreUnsafe(ref ds, i);
        Debug.Assert(!Vector128.IsHardwareAccelerated || n - i < (nuint)Vector128<float>.Count);
        for (; i < n; i++)
            Unsafe.Add(ref ds, i) = TOperator.Invoke(Unsafe.Add(ref xs, i));
    }

    /// <summary>destination[i] = f(x[i], y[i]); destination may be x or y itself, but no other overlap.</summary>
    public static void Map<TOperator>(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> destination)
        where TOperator : IBinaryOperator
    {
        if (y.Length != x.Length)
            throw new ArgumentException($"y has {y.Length} elements, x has {x.Length}", nameof(y));
        CheckDestination(x, destination);
        CheckDestination(y, destination);
        ref float xs = ref MemoryMarshal.GetReference(x);
        ref float ys = ref MemoryMarshal.GetReference(y);
        ref float ds = ref MemoryMarshal.GetReference(destination);
        nuint n = (nuint)x.Length, i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i + (nuint)Vector512<float>.Count <= n; i += (nuint)Vector512<float>.Count)
                TOperator.Invoke(Vector512.LoadUnsafe(ref xs, i), Vector512.LoadUnsafe(ref ys, i)).StoreUnsafe(ref ds, i);
        if (Vector256.IsHardwareAccelerated)
            for (; i + (nuint)Vector256<float>.Count <= n; i += (nuint)Vector256<float>.Count)
                TOperator.Invoke(Vector256.LoadUnsafe(ref xs, i), Vector256.LoadUnsafe(ref ys, i)).StoreUnsafe(ref ds, i);
        if (Vector128.IsHardwareAccelerated)
            for (; i + (nuint)Vector128<float>.Count <= n; i += (nuint)Vector128<float>.Count)
                TOperator.Invoke(Vector128.LoadUnsafe(ref xs, i), Vector128.LoadUnsafe(ref ys, i)).StoreUnsafe(ref ds, i);
        for (; i < n; i++)
            Unsafe.Add(ref ds, i) = TOperator.Invoke(Unsafe.Add(ref xs, i), Unsafe.Add(ref ys, i));
    }

    // Arithmetic on vectors that the next pass reads at once (the step's parameter-sized sums, the mean, clipping; a
    // residual's or dropout's activations). TensorPrimitives does the same IEEE operations but stores past 256 KiB
    // with non-temporal stores, which bypass the cache: the next pass then reads the result back from memory, about 3×
    // slower on the step's 1 MB vectors. Same bits either way.

    /// <summary>destination[i] = x[i] + y[i]; destination may be x or y itself, but no other overlap.</summary>
    public static void Add(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> destination) =>
        Map<AddOperator>(x, y, destination);

    /// <summary>destination[i] = x[i] · y[i]; destination may be x or y itself, but no other overlap.</summary>
    public static void Multiply(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> destination) =>
        Map<MultiplyOperator>(x, y, destination);

    /// <summary>destination[i] = x[i] · factor; destination may be x itself, but no other overlap.</summary>
    public static void Multiply(ReadOnlySpan<float> x, float factor, Span<float> destination) =>
        Scale<No, No>(x, default, factor, destination);

    /// <summary>destination[i] = x[i] / divisor; destination may be x itself, but no other overlap.</summary>
    public static void Divide(ReadOnlySpan<float> x, float divisor, Span<float> destination) =>
        Scale<Yes, No>(x, default, divisor, destination);

    /// <summary>
    /// destination[i] = (float)x[i] / divisor.Value, the IEEE quotient: the same floats as widening the bytes and then
    /// dividing them. Widens 16 bytes at a time; divides by the reciprocal with one correction where that is exact for
    /// every byte (<see cref="ByteDivisor"/>), by division otherwise.
    /// </summary>
    public static unsafe void Widen(ReadOnlySpan<byte> x, ByteDivisor divisor, Span<float> destination)
    {
        if (destination.Length < x.Length)
            throw new ArgumentException($"destination has {destination.Length} elements, needs {x.Length}", nameof(destination));
        fixed (byte* xs = x)
        fixed (float* ds = destination)
            Widen(xs, x.Length, divisor, ds);
    }

    /// <summary><see cref="Widen(ReadOnlySpan{byte}, ByteDivisor, Span{float})"/> on n elements at pointers (the
    /// GEMM's packing of a byte operand).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe void Widen(byte* xs, int n, ByteDivisor divisor, float* ds)
    {
        float d = divisor.Value, r = divisor.Reciprocal;
        bool one = d == 1f, reciprocal = divisor.ByReciprocal;
        int i = 0;
        if (Avx512F.IsSupported)
        {
            Vector512<float> vd = Vector512.Create(d), vr = Vector512.Create(r);
            for (; i + 16 <= n; i += 16)
            {
                var a = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(xs + i)));
                if (!one) a = reciprocal ? Quotient(a, vd, vr) : a / vd;
                a.Store(ds + i);
            }
        }
        if (Avx2.IsSupported)
        {
            Vector256<float> vd = Vector256.Create(d), vr = Vector256.Create(r);
            for (; i + 8 <= n; i += 8)
            {
                var a = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(xs + i));
                if (!one) a = reciprocal ? Quotient(a, vd, vr) : a / vd;
                a.Store(ds + i);
            }
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            Vector128<float> vd = Vector128.Create(d), vr = Vector128.Create(r);
            for (; i + 16 <= n; i += 16)
            {
                var (low, high) = Vector128.Widen(Vector128.Load(xs + i));
                var (a, b) = Vector128.Widen(low);
                var (c, e) = Vector128.Widen(high);
                Vector128<float> fa = Vector128.ConvertToSingle(a.AsInt32()), fb = Vector128.ConvertToSingle(b.AsInt32()),
                    fc = Vector128.ConvertToSingle(c.AsInt32()), fe = Vector128.ConvertToSingle(e.AsInt32());
                if (!one)
                {
                    fa = reciprocal ? Quotient(fa, vd, vr) : fa / vd;
                    fb = reciprocal ? Quotient(fb, vd, vr) : fb / vd;
                    fc = reciprocal ? Quotient(fc, vd, vr) : fc / vd;
                    fe = reciprocal ? Quotient(fe, vd, vr) : fe / vd;
                }
                fa.Store(ds + i);
                fb.Store(ds + i + 4);
                fc.Store(ds + i + 8);
                fe.Store(ds + i + 12);
            }
        }
        for (; i < n; i++) ds[i] = one ? xs[i] : reciprocal ? ByteDivisor.Quotient(xs[i], d, r) : xs[i] / d;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Quotient(Vector512<float> a, Vector512<float> d, Vector512<float> r)
    {
        var q = a * r;
        return Vector512.FusedMultiplyAdd(Vector512.FusedMultiplyAdd(-q, d, a), r, q);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Quotient(Vector256<float> a, Vector256<float> d, Vector256<float> r)
    {
        var q = a * r;
        return Vector256.FusedMultiplyAdd(Vector256.FusedMultiplyAdd(-q, d, a), r, q);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Quotient(Vector128<float> a, Vector128<float> d, Vector128<float> r)
    {
        var q = a * r;
        return Vector128.FusedMultiplyAdd(Vector128.FusedMultiplyAdd(-q, d, a), r, q);
    }

    /// <summary>
    /// destination[i] = x[i] / count: by the reciprocal when count is a power of two (it is exact there, so the product
    /// rounds the same real number as the quotient: the same bits at a fraction of a division's cost), else by
    /// division. destination may be x itself, but no other overlap.
    /// </summary>
    public static void DivideByCount(ReadOnlySpan<float> x, int count, Span<float> destination)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        if (System.Numerics.BitOperations.IsPow2(count)) Scale<No, No>(x, default, 1f / count, destination);
        else Scale<Yes, No>(x, default, count, destination);
    }

    /// <summary>
    /// destination[i] = (x[i] + y[i]) / count in one pass, with the bits of <see cref="Add(ReadOnlySpan{float},
    /// ReadOnlySpan{float}, Span{float})"/> followed by <see cref="DivideByCount"/> (the sum is rounded to float first).
    /// destination may be x or y itself, but no other overlap.
    /// </summary>
    public static void AddThenDivideByCount(ReadOnlySpan<float> x, ReadOnlySpan<float> y, int count, Span<float> destination)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        if (y.Length != x.Length)
            throw new ArgumentException($"y has {y.Length} elements, x has {x.Length}", nameof(y));
        CheckDestination(y, destination);
        if (System.Numerics.BitOperations.IsPow2(count)) Scale<No, Yes>(x, y, 1f / count, destination);
        else Scale<Yes, Yes>(x, y, count, destination);
    }

    /// <summary>destination[i] = (x[i] (+ y[i] when TAdd)) · or / scalar; y is read only when TAdd.</summary>
    private static void Scale<TDivide, TAdd>(ReadOnlySpan<float> x, ReadOnlySpan<float> y, float scalar, Span<float> destination)
        where TDivide : IFlag where TAdd : IFlag
    {
        CheckDestination(x, destination);
        ref float xs = ref MemoryMarshal.GetReference(x);
        ref float ys = ref MemoryMarshal.GetReference(y);
        ref float ds = ref MemoryMarshal.GetReference(destination);
        nuint n = (nuint)x.Length, i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var v = Vector512.Create(scalar);
            for (; i + (nuint)Vector512<float>.Count <= n; i += (nuint)Vector512<float>.Count)
            {
                var a = Vector512.LoadUnsafe(ref xs, i);
                if (TAdd.Value) a += Vector512.LoadUnsafe(ref ys, i);
                (TDivide.Value ? a / v : a * v).StoreUnsafe(ref ds, i);
            }
        }
        if (Vector256.IsHardwareAccelerated)
        {
            var v = Vector256.Create(scalar);
            for (; i + (nuint)Vector256<float>.Count <= n; i += (nuint)Vector256<float>.Count)
            {
                var a = Vector256.LoadUnsafe(ref xs, i);
                if (TAdd.Value) a += Vector256.LoadUnsafe(ref ys, i);
                (TDivide.Value ? a / v : a * v).StoreUnsafe(ref ds, i);
            }
        }
        if (Vector128.IsHardwareAccelerated)
        {
            var v = Vector128.Create(scalar);
            for (; i + (nuint)Vector128<float>.Count <= n; i += (nuint)Vector128<float>.Count)
            {
                var a = Vector128.LoadUnsafe(ref xs, i);
                if (TAdd.Value) a += Vector128.LoadUnsafe(ref ys, i);
                (TDivide.Value ? a / v : a * v).StoreUnsafe(ref ds, i);
            }
        }
        for (; i < n; i++)
        {
            float a = Unsafe.Add(ref xs, i);
            if (TAdd.Value) a += Unsafe.Add(ref ys, i);
            Unsafe.Add(ref ds, i) = TDivide.Value ? a / scalar : a * scalar;
        }
    }

    /// <summary>
    /// parameters[i] = update(parameters[i], gradient[i], ref state0[i], ref state1[i], ref state2[i]). A state
    /// span is either empty (never read or written; the operator must not keep that state) or as long as
    /// parameters. The spans must not overlap one another. With <paramref name="updated"/>, the parameters are updated
    /// in pieces of <see cref="ParallelUpdateChunk"/> elements, each told to it as soon as it holds its new values,
    /// while the piece is still in cache (on the thread that updated it: pieces may be told concurrently).
    /// </summary>
    public static void Update<TUpdate>(TUpdate update, Span<float> parameters, ReadOnlySpan<float> gradient,
        Span<float> state0, Span<float> state1, Span<float> state2, int threads = 1, UpdatedPieces? updated = null)
        where TUpdate : struct, IParameterUpdate
    {
        int length = parameters.Length;
        if (gradient.Length != length)
            throw new ArgumentException($"gradient has {gradient.Length} elements, parameters {length}", nameof(gradient));
        bool has0 = HasState(state0, length, nameof(state0)), has1 = HasState(state1, length, nameof(state1)),
            has2 = HasState(state2, length, nameof(state2));
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        int parts = (int)Math.Min(Math.Min(threads, GemmWorkers.MaxHelpers + 1), (long)length / ParallelUpdateMinimum);
        if (parts > 1 && Monitor.TryEnter(GemmWorkers.Gate))
        {
            try
            {
                unsafe
                {
                    fixed (float* w = parameters, g = gradient, s0 = state0, s1 = state1, s2 = state2)
                    {
                        var job = UpdateJob<TUpdate>.Instance;
                        job.Set(update, w, g, has0 ? s0 : null, has1 ? s1 : null, has2 ? s2 : null, length, updated);
                        try { GemmWorkers.Run(job, parts - 1); }
                        // The shared job keeps nothing of this call alive (the observer holds a step's arrays).
                        finally { job.Set(default, null, null, null, null, null, 0, null); }
                    }
                }
            }
            finally
            {
                Monitor.Exit(GemmWorkers.Gate);
            }
            return;
        }
        if (updated is null)
        {
            UpdateSerial(update, parameters, gradient, state0, state1, state2, has0, has1, has2);
            return;
        }
        for (int start = 0; start < length; start += ParallelUpdateChunk)
        {
            int count = Math.Min(ParallelUpdateChunk, length - start);
            UpdateSerial(update, parameters.Slice(start, count), gradient.Slice(start, count), Piece(state0, has0, start, count),
                Piece(state1, has1, start, count), Piece(state2, has2, start, count), has0, has1, has2);
            updated.Updated(start, count);
        }
    }

    private static Span<float> Piece(Span<float> state, bool has, int start, int count) => has ? state.Slice(start, count) : default;

    /// <summary>Elements per piece of a parallel update (a multiple of every vector width): 64 KiB of each buffer.</summary>
    internal const int ParallelUpdateChunk = 16 * 1024;

    /// <summary>Elements per thread below which another thread saves too little (~45 µs of Adam) to be worth its wake-up.</summary>
    internal const int ParallelUpdateMinimum = 4 * ParallelUpdateChunk;

    private static void UpdateSerial<TUpdate>(TUpdate update, Span<float> parameters, ReadOnlySpan<float> gradient,
        Span<float> state0, Span<float> state1, Span<float> state2, bool has0, bool has1, bool has2)
        where TUpdate : struct, IParameterUpdate
    {
        ref float w = ref MemoryMarshal.GetReference(parameters);
        ref float g = ref MemoryMarshal.GetReference(gradient);
        ref float r0 = ref MemoryMarshal.GetReference(state0);
        ref float r1 = ref MemoryMarshal.GetReference(state1);
        ref float r2 = ref MemoryMarshal.GetReference(state2);
        nuint n = (nuint)parameters.Length;
        // One loop compiled per set of kept states, so the loop never tests for an absent one.
        switch ((has0 ? 1 : 0) | (has1 ? 2 : 0) | (has2 ? 4 : 0))
        {
            case 0: Update<TUpdate, No, No, No>(update, ref w, ref g, ref r0, ref r1, ref r2, n); break;
            case 1: Update<TUpdate, Yes, No, No>(update, ref w, ref g, ref r0, ref r1, ref r2, n); break;
            case 2: Update<TUpdate, No, Yes, No>(update, ref w, ref g, ref r0, ref r1, ref r2, n); break;
            case 3: Update<TUpdate, Yes, Yes, No>(update, ref w, ref g, ref r0, ref r1, ref r2, n); break;
            case 4: Update<TUpdate, No, No, Yes>(update, ref w, ref g, ref r0, ref r1, ref r2, n); break;
            case 5: Update<TUpdate, Yes, No, Yes>(update, ref w, ref g, ref r0, ref r1, ref r2, n); break;
            case 6: Update<TUpdate, No, Yes, Yes>(update, ref w, ref g, ref r0, ref r1, ref r2, n); break;
            default: Update<TUpdate, Yes, Yes, Yes>(update, ref w, ref g, ref r0, ref r1, ref r2, n); break;
        }
    }

    /// <summary>
    /// A parallel optimizer step: pieces of <see cref="ParallelUpdateChunk"/> elements claimed first come, first
    /// served by the caller and the helpers that wake in time. Elements are independent, so the bits never depend on
    /// who took which piece. Reused under <see cref="GemmWorkers.Gate"/>, so a step allocates nothing.
    /// </summary>
    private sealed unsafe class UpdateJob<TUpdate> : GemmWork where TUpdate : struct, IParameterUpdate
    {
        public static readonly UpdateJob<TUpdate> Instance = new();
        private TUpdate _update;
        private float* _w, _g, _s0, _s1, _s2;
        private int _length, _next;
        private UpdatedPieces? _updated;

        public void Set(TUpdate update, float* w, float* g, float* s0, float* s1, float* s2, int length, UpdatedPieces? updated)
        {
            _updated = updated;
            _update = update;
            _w = w;
            _g = g;
            _s0 = s0;
            _s1 = s1;
            _s2 = s2;
            _length = length;
            Volatile.Write(ref _next, 0);
        }

        public override void Participate()
        {
            while (true)
            {
                long start = (long)(Interlocked.Increment(ref _next) - 1) * ParallelUpdateChunk;
                if (start >= _length) return;
                int count = (int)Math.Min(ParallelUpdateChunk, _length - start);
                UpdateSerial(_update, new Span<float>(_w + start, count), new ReadOnlySpan<float>(_g + start, count),
                    Piece(_s0, start, count), Piece(_s1, start, count), Piece(_s2, start, count),
                    _s0 != null, _s1 != null, _s2 != null);
                _updated?.Updated((int)start, count);
            }
        }

        private static Span<float> Piece(float* state, long start, int count) =>
            state == null ? default : new Span<float>(state + start, count);
    }

    private static void Update<TUpdate, THas0, THas1, THas2>(TUpdate update, ref float w, ref float g, ref float r0,
        ref float r1, ref float r2, nuint n)
        where TUpdate : struct, IParameterUpdate where THas0 : IFlag where THas1 : IFlag where THas2 : IFlag
    {
        // A local copy, so the JIT keeps the operator's fields in registers.
        var op = update;
        nuint i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i + (nuint)Vector512<float>.Count <= n; i += (nuint)Vector512<float>.Count)
            {
                Vector512<float> s0 = THas0.Value ? Vector512.LoadUnsafe(ref r0, i) : default,
                    s1 = THas1.Value ? Vector512.LoadUnsafe(ref r1, i) : default,
                    s2 = THas2.Value ? Vector512.LoadUnsafe(ref r2, i) : default;
                op.Invoke(Vector512.LoadUnsafe(ref w, i), Vector512.LoadUnsafe(ref g, i), ref s0, ref s1, ref s2)
                    .StoreUnsafe(ref w, i);
                if (THas0.Value) s0.StoreUnsafe(ref r0, i);
                if (THas1.Value) s1.StoreUnsafe(ref r1, i);
                if (THas2.Value) s2.StoreUnsafe(ref r2, i);
            }
        if (Vector256.IsHardwareAccelerated)
            for (; i + (nuint)Vector256<float>.Count <= n; i += (nuint)Vector256<float>.Count)
            {
                Vector256<float> s0 = THas0.Value ? Vector256.LoadUnsafe(ref r0, i) : default,
                    s1 = THas1.Value ? Vector256.LoadUnsafe(ref r1, i) : default,
                    s2 = THas2.Value ? Vector256.LoadUnsafe(ref r2, i) : default;
                op.Invoke(Vector256.LoadUnsafe(ref w, i), Vector256.LoadUnsafe(ref g, i), ref s0, ref s1, ref s2)
                    .StoreUnsafe(ref w, i);
                if (THas0.Value) s0.StoreUnsafe(ref r0, i);
                if (THas1.Value) s1.StoreUnsafe(ref r1, i);
                if (THas2.Value) s2.StoreUnsafe(ref r2, i);
            }
        if (Vector128.IsHardwareAccelerated)
            for (; i + (nuint)Vector128<float>.Count <= n; i += (nuint)Vector128<float>.Count)
            {
                Vector128<float> s0 = THas0.Value ? Vector128.LoadUnsafe(ref r0, i) : default,
                    s1 = THas1.Value ? Vector128.LoadUnsafe(ref r1, i) : default,
                    s2 = THas2.Value ? Vector128.LoadUnsafe(ref r2, i) : default;
                op.Invoke(Vector128.LoadUnsafe(ref w, i), Vector128.LoadUnsafe(ref g, i), ref s0, ref s1, ref s2)
                    .StoreUnsafe(ref w, i);
                if (THas0.Value) s0.StoreUnsafe(ref r0, i);
                if (THas1.Value) s1.StoreUnsafe(ref r1, i);
                if (THas2.Value) s2.StoreUnsafe(ref r2, i);
            }
        for (; i < n; i++)
        {
            float s0 = THas0.Value ? Unsafe.Add(ref r0, i) : 0f, s1 = THas1.Value ? Unsafe.Add(ref r1, i) : 0f,
                s2 = THas2.Value ? Unsafe.Add(ref r2, i) : 0f;
            Unsafe.Add(ref w, i) = op.Invoke(Unsafe.Add(ref w, i), Unsafe.Add(ref g, i), ref s0, ref s1, ref s2);
            if (THas0.Value) Unsafe.Add(ref r0, i) = s0;
            if (THas1.Value) Unsafe.Add(ref r1, i) = s1;
            if (THas2.Value) Unsafe.Add(ref r2, i) = s2;
        }
    }

    /// <summary>The widest width the loops use in this process: 512, 256, 128 or 0 (scalar only).</summary>
    public static int WidestAcceleratedBits =>
        Vector512.IsHardwareAccelerated ? 512
        : Vector256.IsHardwareAccelerated ? 256
        : Vector128.IsHardwareAccelerated ? 128
        : 0;

    private static void CheckDestination(ReadOnlySpan<float> source, Span<float> destination)
    {
        if (destination.Length < source.Length)
            throw new ArgumentException(
                $"destination has {destination.Length} elements, fewer than the input's {source.Length}", nameof(destination));
        // Vectors read ahead of the scalar order, so only exact aliasing (in place) is safe.
        if (source.Overlaps(destination, out int offset) && offset != 0)
            throw new ArgumentException($"destination overlaps the input at an offset of {offset} elements", nameof(destination));
    }

    private static bool HasState(Span<float> state, int length, string name)
    {
        if (state.IsEmpty) return false;
        if (state.Length != length)
            throw new ArgumentException($"{name} has {state.Length} elements, parameters {length}", name);
        return true;
    }

    /// <summary>A compile-time bool: the JIT compiles a generic method once per struct argument and folds Value.</summary>
    private interface IFlag { static abstract bool Value { get; } }
    private readonly struct Yes : IFlag { public static bool Value => true; }
    private readonly struct No : IFlag { public static bool Value => false; }
}
