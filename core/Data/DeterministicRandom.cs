// The product's one random source (weight init, shuffling, synthetic data): xoshiro256** seeded by SplitMix64,
// written out here so the sequence is bit-stable across .NET versions and machines (System.Random is not).
namespace DistTrain.Core.Data;

/// <summary>
/// xoshiro256** (Blackman &amp; Vigna, https://prng.di.unimi.it/) with a SplitMix64-expanded seed. The whole state is
/// four <see cref="ulong"/>s (<see cref="GetState"/>/<see cref="SetState"/>), so a checkpoint can resume it exactly.
/// </summary>
public sealed class DeterministicRandom
{
    private Xoshiro256 _core;

    public DeterministicRandom(ulong seed) => _core = Xoshiro256.FromSeed(seed);

    /// <summary>Restores a generator from <see cref="GetState"/>.</summary>
    public DeterministicRandom(ReadOnlySpan<ulong> state) => SetState(state);

    public ulong[] GetState() => [_core.S0, _core.S1, _core.S2, _core.S3];

    public void SetState(ReadOnlySpan<ulong> state)
    {
        if (state.Length != 4)
            throw new ArgumentException($"state has {state.Length} words, expected 4", nameof(state));
        if ((state[0] | state[1] | state[2] | state[3]) == 0)
            throw new ArgumentException("state is all zero, which xoshiro256** never leaves", nameof(state));
        _core = new Xoshiro256(state[0], state[1], state[2], state[3]);
    }

    public ulong NextUInt64() => _core.NextUInt64();

    /// <summary>Uniform integer in [0, maxExclusive), without modulo bias.</summary>
    public int NextInt(int maxExclusive)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxExclusive);
        return (int)_core.NextBelow((uint)maxExclusive);
    }

    /// <summary>Uniform double in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => _core.NextDouble();

    /// <summary>
    /// Standard normal sample by Box–Muller. Only the cosine half of each pair is used, so the state stays four
    /// words with no cached second value to save and restore.
    /// </summary>
    public double NextGaussian() => _core.NextGaussian();

    /// <summary>In-place Fisher–Yates shuffle.</summary>
    public void Shuffle<T>(Span<T> values) => _core.Shuffle(values);
}

/// <summary>The generator itself as a struct, so hot paths (<see cref="Sampler"/>) can keep it on the stack.</summary>
internal struct Xoshiro256(ulong s0, ulong s1, ulong s2, ulong s3)
{
    public ulong S0 = s0, S1 = s1, S2 = s2, S3 = s3;

    public static Xoshiro256 FromSeed(ulong seed)
    {
        // SplitMix64 spreads any seed (0 included) over the 256-bit state, as the xoshiro authors recommend.
        ulong x = seed;
        return new Xoshiro256(SplitMix64(ref x), SplitMix64(ref x), SplitMix64(ref x), SplitMix64(ref x));
    }

    public static ulong SplitMix64(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public ulong NextUInt64()
    {
        ulong result = ulong.RotateLeft(S1 * 5, 7) * 9;
        ulong t = S1 << 17;
        S2 ^= S0;
        S3 ^= S1;
        S1 ^= S2;
        S0 ^= S3;
        S2 ^= t;
        S3 = ulong.RotateLeft(S3, 45);
        return result;
    }

    /// <summary>Lemire's multiply-and-reject: unbiased, and almost never loops.</summary>
    public uint NextBelow(uint bound)
    {
        ulong product = (NextUInt64() >> 32) * bound;
        if ((uint)product < bound)
        {
            uint threshold = (0u - bound) % bound;
            while ((uint)product < threshold)
                product = (NextUInt64() >> 32) * bound;
        }
        return (uint)(product >> 32);
    }

    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    public double NextGaussian()
    {
        // 1 - u lies in (0, 1], so the logarithm is finite.
        double u1 = 1.0 - NextDouble();
        double u2 = NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }

    public void Shuffle<T>(Span<T> values)
    {
        for (int i = values.Length - 1; i > 0; i--)
        {
            int j = (int)NextBelow((uint)i + 1);
            (values[i], values[j]) = (values[j], values[i]);
        }
    }
}
