// The element-wise loops and their operators: every length 0..256 at offsets 0..3 inside guarded buffers, each
// element against the operator's own scalar path bit for bit (and activations against float64 too), every width's
// lanes against the scalar path, in place, and the defined results for NaN, ±∞ and −0. CI reruns these with
// AVX-512, AVX2 and all hardware intrinsics off, so the loops take each width for their bulk in turn.
using System.Runtime.Intrinsics;
using DistTrain.Core.Kernels;
using DistTrain.Core.Optim;

namespace DistTrain.Tests.Kernels;

public class ElementWiseTests
{
    private const int MaxLength = 256, Guard = 16;
    private const float Sentinel = -12345.5f;

    public static TheoryData<Activation> Activations => [Activation.ReLU, Activation.Sigmoid, Activation.Tanh];

    // Every optimizer update, with the state slots it keeps (s0, s1, s2) as the optimizer classes pass them.
    private static readonly (string Name, IParameterUpdate Update, bool[] Keeps)[] Updates =
    [
        ("sgd", new SgdUpdate(0.05f, 0f, false, 0f), [false, false, false]),
        ("sgd-nesterov-decay", new SgdUpdate(0.05f, 0.9f, true, 0.01f), [true, false, false]),
        ("sgd-momentum", new SgdUpdate(0.05f, 0.8f, false, 0f), [true, false, false]),
        ("adam-l2", new AdamUpdate(0.9f, 0.999f, 1e-8f, 0.1f, 0.05f, 1f, 0.1f), [true, true, false]),
        ("adamw", new AdamUpdate(0.8f, 0.99f, 1e-8f, 0.05f, 0.3f, 0.999f, 0f), [true, true, false]),
        ("adagrad", new AdaGradUpdate(0.05f, 1e-10f, 0.1f), [true, false, false]),
        ("rmsprop", new RmsPropUpdate(0.01f, 0.99f, 1e-8f, 0f, false, 0f), [true, false, false]),
        ("rmsprop-centered", new RmsPropUpdate(0.01f, 0.9f, 1e-8f, 0f, true, 0.01f), [true, true, false]),
        ("rmsprop-momentum", new RmsPropUpdate(0.01f, 0.99f, 1e-8f, 0.9f, false, 0f), [true, false, true]),
        ("rmsprop-centered-momentum", new RmsPropUpdate(0.01f, 0.99f, 1e-8f, 0.5f, true, 0f), [true, true, true]),
    ];

    public static TheoryData<string> UpdateNames => [.. Updates.Select(u => u.Name)];

    [Theory]
    [MemberData(nameof(Activations))]
    public void ForwardMatchesScalarPathAndFloat64AtEveryLengthAndOffset(Activation activation)
    {
        foreach (var (n, offset) in LengthsAndOffsets())
        {
            var random = new Random(n * 4 + offset);
            float[] x = Guarded(n, offset, () => (float)(random.NextDouble() * 8 - 4)), y = Guarded(n, offset, () => 0f);
            DistTrain.Core.Kernels.Activations.Forward(activation, x.AsSpan(offset, n), y.AsSpan(offset, n));
            AssertGuardsIntact(y, n, offset);
            for (int i = offset; i < offset + n; i++)
            {
                double exact = activation switch
                {
                    Activation.ReLU => Math.Max(x[i], 0.0),
                    Activation.Sigmoid => 1 / (1 + Math.Exp(-x[i])),
                    _ => Math.Tanh(x[i]),
                };
                // ReLU is exact. TensorPrimitives' sigmoid and tanh are within a few ulps, except that its vector tanh
                // is off by up to 2⁻²⁴ absolute near 0 (tanh(0) comes out as −2⁻²⁴), hence the absolute floor.
                if (activation == Activation.ReLU) AssertSameBits(ReluOperator.Invoke(x[i]), y[i], $"n={n} i={i}");
                else Assert.True(Math.Abs(y[i] - exact) <= 1e-6 * Math.Abs(exact) + 1.2e-7, $"n={n} i={i}: {y[i]:R} vs {exact:R}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Activations))]
    public void BackwardMatchesScalarPathAndFloat64AtEveryLengthAndOffset(Activation activation)
    {
        foreach (var (n, offset) in LengthsAndOffsets())
        {
            var random = new Random(n * 4 + offset);
            // Outputs in the activation's range (and ReLU's zeros), upstream gradients of both signs.
            Func<float> output = activation switch
            {
                Activation.ReLU => () => random.Next(3) == 0 ? 0f : (float)(random.NextDouble() * 4 - 1),
                Activation.Sigmoid => () => (float)random.NextDouble(),
                _ => () => (float)(random.NextDouble() * 2 - 1),
            };
            float[] y = Guarded(n, offset, output), dy = Guarded(n, offset, () => (float)(random.NextDouble() * 4 - 2));
            float[] dz = Guarded(n, offset, () => 0f);
            DistTrain.Core.Kernels.Activations.Backward(activation, y.AsSpan(offset, n), dy.AsSpan(offset, n), dz.AsSpan(offset, n));
            AssertGuardsIntact(dz, n, offset);
            for (int i = offset; i < offset + n; i++)
            {
                double yi = y[i], dyi = dy[i];
                (float scalar, double exact, double bound) = activation switch
                {
                    Activation.ReLU => (ReluDerivativeOperator.Invoke(y[i], dy[i]), yi > 0 ? dyi : 0, 0),
                    Activation.Sigmoid => (SigmoidDerivativeOperator.Invoke(y[i], dy[i]), dyi * (yi - yi * yi),
                        Math.Abs(dyi) * (Math.Abs(yi) + yi * yi)),
                    _ => (TanhDerivativeOperator.Invoke(y[i], dy[i]), dyi * (1 - yi * yi), Math.Abs(dyi) * (1 + yi * yi)),
                };
                AssertSameBits(scalar, dz[i], $"n={n} i={i}");
                // Three float roundings, each ≤ 2⁻²⁴ relative to the magnitudes it combines.
                Assert.True(Math.Abs(dz[i] - exact) <= 3 * Math.Pow(2, -24) * bound, $"n={n} i={i}: {dz[i]:R} vs {exact:R}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(UpdateNames))]
    public void UpdateMatchesScalarPathAtEveryLengthAndOffset(string name)
    {
        var (_, update, keeps) = Updates.Single(u => u.Name == name);
        foreach (var (n, offset) in LengthsAndOffsets())
        {
            var random = new Random(n * 4 + offset);
            float[] w = Guarded(n, offset, () => Uniform(random)), g = Guarded(n, offset, () => Uniform(random));
            // Non-negative states, as second moments are (a centered RMSProp's v − a² may still go below 0: clamped).
            float[][] states = [.. keeps.Select(keep => keep ? Guarded(n, offset, () => Math.Abs(Uniform(random))) : [])];
            if (n > 0) g[offset + random.Next(n)] = float.NaN; // poisons its own element only
            float[] expectedW = [.. w];
            float[][] expectedStates = [.. states.Select(s => s.ToArray())];
            for (int i = offset; i < offset + n; i++)
            {
                float s0 = keeps[0] ? expectedStates[0][i] : 0f, s1 = keeps[1] ? expectedStates[1][i] : 0f,
                    s2 = keeps[2] ? expectedStates[2][i] : 0f;
                expectedW[i] = update.Invoke(w[i], g[i], ref s0, ref s1, ref s2);
                if (keeps[0]) expectedStates[0][i] = s0;
                if (keeps[1]) expectedStates[1][i] = s1;
                if (keeps[2]) expectedStates[2][i] = s2;
            }

            Span<float> State(int k) => keeps[k] ? states[k].AsSpan(offset, n) : default;
            RunUpdate(update, w.AsSpan(offset, n), g.AsSpan(offset, n), State(0), State(1), State(2));

            AssertAllSameBits(expectedW, w, $"{name} n={n} w");
            for (int k = 0; k < 3; k++)
                if (keeps[k]) AssertAllSameBits(expectedStates[k], states[k], $"{name} n={n} state {k}");
        }
    }

    [Fact]
    public void EveryWidthAgreesWithTheScalarPathLaneByLane()
    {
        // Vector512 invoked directly: emulated where not accelerated, the same IEEE operations either way.
        float[] specials = [float.NaN, float.PositiveInfinity, float.NegativeInfinity, -0f, 0f, 1f, -1f, 1e-30f];
        var random = new Random(5);
        for (int round = 0; round < 64; round++)
        {
            float[] x = [.. Enumerable.Range(0, 16).Select(_ => random.Next(4) == 0 ? specials[random.Next(specials.Length)] : Uniform(random))];
            float[] y = [.. Enumerable.Range(0, 16).Select(_ => random.Next(4) == 0 ? specials[random.Next(specials.Length)] : Uniform(random))];
            CheckLanes<ReluOperator>(x);
            CheckLanes<ReluDerivativeOperator>(x, y);
            CheckLanes<SigmoidDerivativeOperator>(x, y);
            CheckLanes<TanhDerivativeOperator>(x, y);
            foreach (var (name, update, _) in Updates)
                CheckUpdateLanes(update, x, y, [.. y.Select(Math.Abs)], name);
        }
    }

    [Fact]
    public void SpecialValuesGiveTheDocumentedResults()
    {
        const float NaN = float.NaN, Inf = float.PositiveInfinity;
        // (input, expected); the bit patterns of the zeros count.
        CheckForward(Activation.ReLU, [(NaN, NaN), (Inf, Inf), (-Inf, 0f), (-0f, 0f), (0f, 0f), (-3f, 0f), (2f, 2f)]);
        CheckForward(Activation.Sigmoid, [(NaN, NaN), (Inf, 1f), (-Inf, 0f), (-0f, 0.5f), (0f, 0.5f), (-200f, 0f), (200f, 1f)]);
        CheckForward(Activation.Tanh, [(NaN, NaN), (Inf, 1f), (-Inf, -1f), (-50f, -1f), (50f, 1f)]);
        // (y, dy, expected dz)
        CheckBackward(Activation.ReLU, [(NaN, 2f, 0f), (-0f, 2f, 0f), (0f, NaN, 0f), (Inf, 2f, 2f), (1f, NaN, NaN), (1f, -0f, -0f), (-1f, Inf, 0f)]);
        CheckBackward(Activation.Sigmoid, [(NaN, 1f, NaN), (1f, 3f, 0f), (0f, -3f, -0f), (0.5f, Inf, Inf), (0.5f, NaN, NaN), (1f, Inf, NaN)]);
        CheckBackward(Activation.Tanh, [(NaN, 1f, NaN), (1f, 3f, 0f), (-1f, -3f, -0f), (0f, -Inf, -Inf), (0f, NaN, NaN), (1f, Inf, NaN)]);
    }

    [Theory]
    [MemberData(nameof(Activations))]
    public void InPlaceGivesTheSameBitsAsOutOfPlace(Activation activation)
    {
        var random = new Random(9);
        foreach (int n in new[] { 1, 3, 4, 7, 8, 15, 16, 17, 31, 33, 63, 255 })
        {
            float[] x = [.. Enumerable.Range(0, n).Select(_ => (float)random.NextDouble())], dy = [.. x.Select(v => 1 - 2 * v)];
            float[] forward = new float[n], forwardInPlace = [.. x];
            DistTrain.Core.Kernels.Activations.Forward(activation, x, forward);
            DistTrain.Core.Kernels.Activations.Forward(activation, forwardInPlace, forwardInPlace);
            AssertAllSameBits(forward, forwardInPlace, $"forward n={n}");

            float[] backward = new float[n], intoDy = [.. dy], intoY = [.. x];
            DistTrain.Core.Kernels.Activations.Backward(activation, x, dy, backward);
            DistTrain.Core.Kernels.Activations.Backward(activation, x, intoDy, intoDy);
            DistTrain.Core.Kernels.Activations.Backward(activation, intoY, dy, intoY);
            AssertAllSameBits(backward, intoDy, $"backward into dy n={n}");
            AssertAllSameBits(backward, intoY, $"backward into y n={n}");
        }
    }

    [Fact]
    public void ArithmeticMatchesScalarIeeeAtEveryLengthAndOffsetInAndOutOfPlace()
    {
        var random = new Random(23);
        foreach (var (n, offset) in LengthsAndOffsets())
        {
            float[] x = Guarded(n, offset, () => Uniform(random) * 1e3f), y = Guarded(n, offset, () => Uniform(random));
            float factor = Uniform(random) * 7f, divisor = 3f + Uniform(random);
            Span<float> xs = x.AsSpan(offset, n), ys = y.AsSpan(offset, n);
            float[] sum = Guarded(n, offset, () => 0f), scaled = Guarded(n, offset, () => 0f), quotient = Guarded(n, offset, () => 0f);
            ElementWise.Add(xs, ys, sum.AsSpan(offset, n));
            ElementWise.Multiply(xs, factor, scaled.AsSpan(offset, n));
            ElementWise.Divide(xs, divisor, quotient.AsSpan(offset, n));
            for (int i = 0; i < n; i++)
            {
                AssertSameBits(xs[i] + ys[i], sum[offset + i], $"add n={n} i={i}");
                AssertSameBits(xs[i] * factor, scaled[offset + i], $"multiply n={n} i={i}");
                AssertSameBits(xs[i] / divisor, quotient[offset + i], $"divide n={n} i={i}");
            }
            foreach (var buffer in new[] { sum, scaled, quotient }) AssertGuardsIntact(buffer, n, offset);

            float[] inPlace = (float[])x.Clone();
            ElementWise.Add(inPlace.AsSpan(offset, n), ys, inPlace.AsSpan(offset, n));
            AssertAllSameBits(sum, inPlace, $"add in place n={n}");
            inPlace = (float[])x.Clone();
            ElementWise.Multiply(inPlace.AsSpan(offset, n), factor, inPlace.AsSpan(offset, n));
            AssertAllSameBits(scaled, inPlace, $"multiply in place n={n}");
        }
        Assert.Throws<ArgumentException>(() => ElementWise.Multiply(new float[8], 2f, new float[7]));
    }

    [Fact]
    public void AddThenDivideByCountHasTheBitsOfTheTwoPassesAtEveryLengthAndOffsetInAndOutOfPlace()
    {
        // Random bit patterns (NaNs, infinities, subnormals, sums that overflow) and counts that are powers of two
        // (multiplied by the reciprocal) and not (divided): the one pass must give (x + y) rounded, then divided.
        var random = new Random(29);
        float Any() => BitConverter.Int32BitsToSingle(random.Next(int.MinValue, int.MaxValue));
        int[] counts = [1, 2, 3, 7, 64, 100, 128, 1000, 1 << 20];
        foreach (var (n, offset) in LengthsAndOffsets())
        {
            float[] x = Guarded(n, offset, Any), y = Guarded(n, offset, () => random.Next(4) == 0 ? float.MaxValue : Any());
            Span<float> xs = x.AsSpan(offset, n), ys = y.AsSpan(offset, n);
            int count = counts[random.Next(counts.Length)];
            float[] mean = Guarded(n, offset, () => 0f), divided = Guarded(n, offset, () => 0f);
            ElementWise.AddThenDivideByCount(xs, ys, count, mean.AsSpan(offset, n));
            ElementWise.DivideByCount(xs, count, divided.AsSpan(offset, n));
            for (int i = 0; i < n; i++)
            {
                AssertSameBits((xs[i] + ys[i]) / count, mean[offset + i], $"add then divide n={n} i={i} count={count}");
                AssertSameBits(xs[i] / count, divided[offset + i], $"divide by count n={n} i={i} count={count}");
            }
            AssertGuardsIntact(mean, n, offset);
            AssertGuardsIntact(divided, n, offset);

            float[] intoX = (float[])x.Clone(), intoY = (float[])y.Clone();
            ElementWise.AddThenDivideByCount(intoX.AsSpan(offset, n), ys, count, intoX.AsSpan(offset, n));
            ElementWise.AddThenDivideByCount(xs, intoY.AsSpan(offset, n), count, intoY.AsSpan(offset, n));
            AssertAllSameBits(mean, intoX, $"into x n={n}");
            AssertAllSameBits(mean, intoY, $"into y n={n}");
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => ElementWise.AddThenDivideByCount(new float[8], new float[8], 0, new float[8]));
        Assert.Throws<ArgumentException>(() => ElementWise.AddThenDivideByCount(new float[8], new float[7], 2, new float[8]));
    }

    /// <summary>Records the pieces it is told and checks each already holds its new weights.</summary>
    private sealed class PieceLog(float[] parameters, float[] expected) : UpdatedPieces
    {
        public System.Collections.Concurrent.ConcurrentBag<(int Start, int Count, int Thread)> Pieces { get; } = [];
        public int Stale;

        public override void Updated(int start, int count)
        {
            for (int i = start; i < start + count; i++)
                if (BitConverter.SingleToInt32Bits(parameters[i]) != BitConverter.SingleToInt32Bits(expected[i])) Interlocked.Increment(ref Stale);
            Pieces.Add((start, count, Environment.CurrentManagedThreadId));
        }
    }

    [Theory]
    [InlineData(0, 1)]
    [InlineData(1000, 1)]
    [InlineData(3 * ElementWise.ParallelUpdateChunk + 17, 1)]
    [InlineData(9 * ElementWise.ParallelUpdateChunk + 5, 2)]
    [InlineData(9 * ElementWise.ParallelUpdateChunk, 3)]
    public void AnUpdateTellsEachPieceOnceWithItsNewValues(int length, int threads)
    {
        var random = new Random(length + threads);
        var w = Enumerable.Range(0, length).Select(_ => Uniform(random)).ToArray();
        var g = Enumerable.Range(0, length).Select(_ => Uniform(random)).ToArray();
        var update = new AdamUpdate(0.9f, 0.999f, 1e-8f, 0.1f, 0.05f, 1f, 0.1f);
        var (expected, m0, v0) = ((float[])w.Clone(), new float[length], new float[length]);
        ElementWise.Update(update, expected, g, m0, v0, default);
        var (m, v) = (new float[length], new float[length]);
        var log = new PieceLog(w, expected);
        ElementWise.Update(update, w, g, m, v, default, threads, log);
        AssertAllSameBits(expected, w, "weights");
        AssertAllSameBits(m0, m, "m");
        AssertAllSameBits(v0, v, "v");
        Assert.Equal(0, log.Stale);
        var told = new int[length];
        foreach (var (start, count, _) in log.Pieces)
        {
            Assert.True(count is > 0 and <= ElementWise.ParallelUpdateChunk, $"a piece of {count}");
            for (int i = start; i < start + count; i++) told[i]++;
        }
        Assert.All(told, t => Assert.Equal(1, t));
    }

    [Fact]
    public void ShiftedOverlapAndShortSpansAreRefused()
    {
        float[] buffer = new float[40];
        Assert.Throws<ArgumentException>(() => ElementWise.Map<ReluOperator>(buffer.AsSpan(0, 32), buffer.AsSpan(1, 32)));
        Assert.Throws<ArgumentException>(() => ElementWise.Map<ReluOperator>(buffer.AsSpan(0, 32), new float[31]));
        Assert.Throws<ArgumentException>(() => ElementWise.Map<TanhDerivativeOperator>(new float[8], new float[7], new float[8]));
        Assert.Throws<ArgumentException>(() => ElementWise.Update(new AdaGradUpdate(0.1f, 1e-10f, 0f), new float[8],
            new float[8], new float[7], default, default));
    }

    private static IEnumerable<(int N, int Offset)> LengthsAndOffsets()
    {
        for (int n = 0; n <= MaxLength; n++)
            for (int offset = 0; offset <= 3; offset++)
                yield return (n, offset);
    }

    private static float Uniform(Random random) => (float)(random.NextDouble() * 2 - 1);

    /// <summary>n values at [offset, offset + n), sentinels before and after so that an overrun shows.</summary>
    private static float[] Guarded(int n, int offset, Func<float> value)
    {
        var buffer = new float[offset + n + Guard];
        buffer.AsSpan().Fill(Sentinel);
        for (int i = offset; i < offset + n; i++) buffer[i] = value();
        return buffer;
    }

    private static void AssertGuardsIntact(float[] buffer, int n, int offset)
    {
        for (int i = 0; i < offset; i++) Assert.Equal(Sentinel, buffer[i]);
        for (int i = offset + n; i < buffer.Length; i++) Assert.Equal(Sentinel, buffer[i]);
    }

    // The generic loop called through the interface's static type, as the optimizers call it with their struct.
    private static void RunUpdate(IParameterUpdate update, Span<float> w, ReadOnlySpan<float> g, Span<float> s0,
        Span<float> s1, Span<float> s2)
    {
        switch (update)
        {
            case SgdUpdate u: ElementWise.Update(u, w, g, s0, s1, s2); break;
            case AdamUpdate u: ElementWise.Update(u, w, g, s0, s1, s2); break;
            case AdaGradUpdate u: ElementWise.Update(u, w, g, s0, s1, s2); break;
            case RmsPropUpdate u: ElementWise.Update(u, w, g, s0, s1, s2); break;
            default: throw new ArgumentException(update.GetType().Name);
        }
    }

    private static void CheckLanes<TOperator>(float[] x) where TOperator : IUnaryOperator
    {
        float[] expected = [.. x.Select(v => TOperator.Invoke(v))];
        AssertAllSameBits(expected, Lanes(TOperator.Invoke(Vector512.Create(x))), $"{typeof(TOperator).Name} 512");
        AssertAllSameBits(expected, [.. Lanes(TOperator.Invoke(Vector256.Create(x))), .. Lanes(TOperator.Invoke(Vector256.Create(x, 8)))], $"{typeof(TOperator).Name} 256");
        for (int q = 0; q < 16; q += 4)
            AssertAllSameBits(expected[q..(q + 4)], Lanes(TOperator.Invoke(Vector128.Create(x, q))), $"{typeof(TOperator).Name} 128");
    }

    private static void CheckLanes<TOperator>(float[] x, float[] y) where TOperator : IBinaryOperator
    {
        float[] expected = [.. x.Zip(y, (a, b) => TOperator.Invoke(a, b))];
        AssertAllSameBits(expected, Lanes(TOperator.Invoke(Vector512.Create(x), Vector512.Create(y))), $"{typeof(TOperator).Name} 512");
        for (int h = 0; h < 16; h += 8)
            AssertAllSameBits(expected[h..(h + 8)], Lanes(TOperator.Invoke(Vector256.Create(x, h), Vector256.Create(y, h))), $"{typeof(TOperator).Name} 256");
        for (int q = 0; q < 16; q += 4)
            AssertAllSameBits(expected[q..(q + 4)], Lanes(TOperator.Invoke(Vector128.Create(x, q), Vector128.Create(y, q))), $"{typeof(TOperator).Name} 128");
    }

    private static void CheckUpdateLanes(IParameterUpdate update, float[] w, float[] g, float[] state, string name)
    {
        float[][] states = [state, [.. state.Reverse()], [.. g.Reverse()]];
        float[] expected = new float[16];
        float[][] expectedStates = [new float[16], new float[16], new float[16]];
        for (int i = 0; i < 16; i++)
        {
            float s0 = states[0][i], s1 = states[1][i], s2 = states[2][i];
            expected[i] = update.Invoke(w[i], g[i], ref s0, ref s1, ref s2);
            (expectedStates[0][i], expectedStates[1][i], expectedStates[2][i]) = (s0, s1, s2);
        }

        var (v0, v1, v2) = (Vector512.Create(states[0]), Vector512.Create(states[1]), Vector512.Create(states[2]));
        AssertAllSameBits(expected, Lanes(update.Invoke(Vector512.Create(w), Vector512.Create(g), ref v0, ref v1, ref v2)), $"{name} 512");
        AssertAllSameBits([.. expectedStates.SelectMany(e => e)], [.. Lanes(v0), .. Lanes(v1), .. Lanes(v2)], $"{name} 512 states");
        for (int h = 0; h < 16; h += 8)
        {
            var (u0, u1, u2) = (Vector256.Create(states[0], h), Vector256.Create(states[1], h), Vector256.Create(states[2], h));
            AssertAllSameBits(expected[h..(h + 8)], Lanes(update.Invoke(Vector256.Create(w, h), Vector256.Create(g, h), ref u0, ref u1, ref u2)), $"{name} 256");
            AssertAllSameBits([.. expectedStates.SelectMany(e => e[h..(h + 8)])], [.. Lanes(u0), .. Lanes(u1), .. Lanes(u2)], $"{name} 256 states");
        }
        for (int q = 0; q < 16; q += 4)
        {
            var (u0, u1, u2) = (Vector128.Create(states[0], q), Vector128.Create(states[1], q), Vector128.Create(states[2], q));
            AssertAllSameBits(expected[q..(q + 4)], Lanes(update.Invoke(Vector128.Create(w, q), Vector128.Create(g, q), ref u0, ref u1, ref u2)), $"{name} 128");
            AssertAllSameBits([.. expectedStates.SelectMany(e => e[q..(q + 4)])], [.. Lanes(u0), .. Lanes(u1), .. Lanes(u2)], $"{name} 128 states");
        }
    }

    private static void CheckForward(Activation activation, (float X, float Expected)[] cases)
    {
        // Each case at every position of 31 = 16 + 8 + 4 + 3 elements, so it goes through every width in use.
        foreach (var (x, expected) in cases)
            for (int at = 0; at < 31; at++)
            {
                float[] input = new float[31], output = new float[31];
                input.AsSpan().Fill(0.25f);
                input[at] = x;
                DistTrain.Core.Kernels.Activations.Forward(activation, input, output);
                AssertSameBits(expected, output[at], $"{activation}({x}) at {at}");
            }
    }

    private static void CheckBackward(Activation activation, (float Y, float Dy, float Expected)[] cases)
    {
        foreach (var (y, dy, expected) in cases)
            for (int at = 0; at < 31; at++)
            {
                float[] ys = new float[31], dys = new float[31], dz = new float[31];
                ys.AsSpan().Fill(0.25f);
                dys.AsSpan().Fill(1f);
                (ys[at], dys[at]) = (y, dy);
                DistTrain.Core.Kernels.Activations.Backward(activation, ys, dys, dz);
                AssertSameBits(expected, dz[at], $"{activation}'(y={y}, dy={dy}) at {at}");
            }
    }

    private static float[] Lanes<T>(T vector) where T : struct => vector switch
    {
        Vector128<float> v => [.. Enumerable.Range(0, 4).Select(i => v.GetElement(i))],
        Vector256<float> v => [.. Enumerable.Range(0, 8).Select(i => v.GetElement(i))],
        Vector512<float> v => [.. Enumerable.Range(0, 16).Select(i => v.GetElement(i))],
        _ => throw new ArgumentException(typeof(T).Name),
    };

    /// <summary>Equal bits, or both NaN (a NaN's payload is not part of the contract).</summary>
    private static void AssertSameBits(float expected, float actual, string what) =>
        Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(actual)
            || (float.IsNaN(expected) && float.IsNaN(actual)), $"{what}: expected {expected:R}, got {actual:R}");

    private static void AssertAllSameBits(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++) AssertSameBits(expected[i], actual[i], $"{what} [{i}]");
    }
}
