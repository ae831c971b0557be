// Gradient sums that travel beside the step messages: numbered slots, one block's sum each, stamped with the step and
// block they hold. The same-host transport's slot files (SameHost/SharedMemory.cs) are the one such store today; the
// coordinator and the worker read and write sums there only through this interface, so the step protocol's code
// does not depend on how the slots are kept.
namespace DistTrain.Protos;

public interface IGradientSlots
{
    int SlotCount { get; }

    /// <summary>Writes the sum of shards [first, first + count) of <paramref name="step"/> into <paramref name="slot"/>.</summary>
    void Write(int slot, long step, int firstShard, int shardCount, ReadOnlySpan<float> sum);

    /// <summary>The sum in <paramref name="slot"/> if it is stamped with exactly this step and block; otherwise false.</summary>
    bool TryRead(int slot, long step, int firstShard, int shardCount, out ReadOnlySpan<float> sum);
}
