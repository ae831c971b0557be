// The worker's side of the bulk plane (coordinator/Distributed/BulkPlane.cs): what Prepare offered beside the step
// messages and this worker could open — the step's weights and batch indices published by the coordinator, a pool
// of blocks to claim, slots for its gradient sums, and perhaps a step link of its own. The same-host transport
// (SameHost/: shared memory and a Unix socket) is the one such plane today; WorkerSession uses it only through this
// interface, and a build without that folder attaches nothing (every offer is answered "not supported").
using DistTrain.Protos;

namespace DistTrain.Worker;

public interface IBulkAttachment : IDisposable
{
    /// <summary>Where this worker's block sums go.</summary>
    IGradientSlots Slots { get; }

    /// <summary>How many batch indices the plane holds beside the weights (0: indices come in the requests).</summary>
    int IndexCapacity { get; }

    /// <summary>The CPUs offered for this worker's compute threads (empty: none).</summary>
    IReadOnlyList<int> OfferedCpus { get; }

    /// <summary>Whether it connected a step link; and whether that link is still open.</summary>
    bool HasLink { get; }
    bool LinkOpen { get; }

    /// <summary>Copies the weights of <paramref name="step"/>; false when the plane holds another step's.</summary>
    bool TryReadWeights(long step, Span<float> destination);

    /// <summary>Copies batch indices [start, start + destination.Length) of <paramref name="step"/>; false when it holds another step's.</summary>
    bool TryReadIndices(long step, int start, Span<int> destination);

    /// <summary>Claims the next of <paramref name="blockCount"/> blocks of <paramref name="pool"/>; false when none is left.</summary>
    bool TryClaim(long pool, int blockCount, out int block);

    /// <summary>Closes the step link (its thread ends with it); Dispose closes the rest once no computation reads it.</summary>
    void CloseLink();
}

/// <summary>The planes this build can attach to. A plane's folder implements <see cref="AttachOptional"/>.</summary>
public static partial class BulkAttachments
{
    /// <summary>
    /// Attaches to what <paramref name="request"/> offers, or returns null with <paramref name="note"/> saying why not
    /// (sent back in the Prepare reply and logged by the coordinator). Throws RpcException for a malformed offer.
    /// </summary>
    /// <param name="computeOnLink">Computes a request that arrived over the plane's step link, on the link's thread.</param>
    public static IBulkAttachment? Attach(PrepareRequest request, int parameterCount, WorkerOptions options,
        Func<ComputeRequest, ComputeReply> computeOnLink, ILogger log, out string note)
    {
        IBulkAttachment? attachment = null;
        note = request.SharedMemory is null ? "not offered" : "not supported by this build";
        AttachOptional(request, parameterCount, options, computeOnLink, log, ref attachment, ref note);
        return attachment;
    }

    static partial void AttachOptional(PrepareRequest request, int parameterCount, WorkerOptions options,
        Func<ComputeRequest, ComputeReply> computeOnLink, ILogger log, ref IBulkAttachment? attachment, ref string note);
}
