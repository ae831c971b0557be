// Epoch orders for training: a permutation that is a pure function of (seed, epoch), so a resumed run or a
// rejoining worker regenerates epoch e's order directly instead of replaying epochs 0..e-1.
namespace DistTrain.Core.Data;

public static class Sampler
{
    /// <summary>Writes a Fisher–Yates permutation of 0..count-1 into destination[..count]; allocation-free.</summary>
    public static void EpochPermutation(ulong seed, int epoch, int count, Span<int> destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (destination.Length < count)
            throw new ArgumentException($"destination holds {destination.Length} items, need {count}", nameof(destination));

        Span<int> order = destination[..count];
        for (int i = 0; i < order.Length; i++) order[i] = i;
        var rng = Xoshiro256.FromSeed(EpochSeed(seed, epoch));
        rng.Shuffle(order);
    }

    public static int[] EpochPermutation(ulong seed, int epoch, int count)
    {
        var order = new int[count];
        EpochPermutation(seed, epoch, count, order);
        return order;
    }

    /// <summary>
    /// Mixes seed and epoch through SplitMix64 twice so neighbouring epochs (and seeds) get unrelated streams;
    /// a plain seed + epoch would make (seed, e + 1) and (seed + 1, e) identical.
    /// </summary>
    internal static ulong EpochSeed(ulong seed, int epoch)
    {
        ulong x = seed;
        ulong mixed = Xoshiro256.SplitMix64(ref x) ^ (ulong)epoch;
        return Xoshiro256.SplitMix64(ref mixed);
    }
}
