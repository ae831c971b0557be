// A data plane beside the step messages, for the workers that can reach it: the step's weights (and batch indices)
// published once for all of them, their gradient sums read from slots of their own, and a pool of blocks they claim
// one at a time. The same-host transport (SameHost/: shared memory and a Unix-socket step link) is the one plane
// today. Nothing outside its folder names it: the cluster asks BulkPlanes for one, the preparer offers it to each
// worker and keeps what the worker accepted (a BulkMember), and StepTransport publishes, opens pools and reads slots
// through these interfaces. A build without the folder has no plane, and every worker gets its weights and gradients
// in its messages (gRPC or the TCP step link).
using DistTrain.Protos;

namespace DistTrain.Coordinator.Distributed;

public interface IBulkPlane : IDisposable
{
    /// <summary>What it is, for the log ("shared memory").</summary>
    string Name { get; }

    /// <summary>The offer to make to a worker in Prepare. Throws IOException when none can be made for it.</summary>
    IBulkOffer OfferFor(string workerId, int threads);

    /// <summary>
    /// Publishes the attempt's weights (rounded to bfloat16 when <paramref name="roundToBf16"/>) for every member, with
    /// the batch's indices when the plane has room for them; true when it took the indices (requests then carry none).
    /// </summary>
    bool Publish(long step, ReadOnlySpan<float> weights, ReadOnlySpan<int> indices, bool roundToBf16);

    /// <summary>Opens a new pool (its id: never the id of a pool still claimable) for an attempt's claimable blocks.</summary>
    long OpenPool();
}

/// <summary>One worker's offer: what Prepare carries, and what the worker's reply made of it.</summary>
public interface IBulkOffer
{
    /// <summary>Puts the offer into the Prepare request.</summary>
    void AddTo(PrepareRequest request);

    /// <summary>The member the worker became, or null when its reply declined the offer (<see cref="Declined"/> says why).</summary>
    BulkMember? Accept(PrepareReply reply);

    /// <summary>The worker's reason for declining, printable.</summary>
    string Declined(PrepareReply reply);
}

/// <param name="Slots">Where its gradient sums are read.</param>
/// <param name="Link">Its step link on this plane, when it connected one (else its steps go over gRPC).</param>
/// <param name="Cpus">The CPUs its compute threads were bound to as offered (null: not bound).</param>
/// <param name="Description">How its steps travel, for the log.</param>
public sealed record BulkMember(IGradientSlots Slots, StepLink? Link, IReadOnlyList<int>? Cpus, string Description);

/// <summary>
/// The planes this build has. A plane's folder implements <see cref="CreateOptional"/>; without it the call is
/// compiled away and there is none.
/// </summary>
public static partial class BulkPlanes
{
    /// <summary>
    /// The plane for a run of <paramref name="parameterCount"/> parameters, at most <paramref name="slotCount"/> blocks
    /// a step and batches of <paramref name="batchSize"/>; null when this build has none or the options turn it off.
    /// A plane that cannot start logs why and leaves the run without it.
    /// </summary>
    public static IBulkPlane? Create(ClusterOptions options, int parameterCount, int slotCount, int batchSize, Action<string> log)
    {
        IBulkPlane? plane = null;
        CreateOptional(options, parameterCount, slotCount, batchSize, log, ref plane);
        return plane;
    }

    static partial void CreateOptional(ClusterOptions options, int parameterCount, int slotCount, int batchSize, Action<string> log,
        ref IBulkPlane? plane);
}
