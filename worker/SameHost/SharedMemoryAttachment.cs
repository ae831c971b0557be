// The worker's side of the same-host transport as its bulk attachment (BulkAttachment.cs): the coordinator's weights
// file and this worker's slot file, mapped after their paths (SharedMemoryPaths) and nonce are checked, and the step
// link over the Unix socket beside them when the offer names one.
using DistTrain.Protos;
using Grpc.Core;

namespace DistTrain.Worker;

public sealed class SharedMemoryAttachment : IBulkAttachment
{
    private readonly SharedWeights _weights;
    private readonly SharedSlots _slots;
    private readonly WorkerStepLink? _link;

    private SharedMemoryAttachment(SharedWeights weights, SharedSlots slots, WorkerStepLink? link, IReadOnlyList<int> cpus)
    {
        (_weights, _slots, _link, OfferedCpus) = (weights, slots, link, cpus);
    }

    public IGradientSlots Slots => _slots;
    public int IndexCapacity => _weights.IndexCapacity;
    public IReadOnlyList<int> OfferedCpus { get; }
    public bool HasLink => _link is not null;
    public bool LinkOpen => _link?.IsOpen == true;

    public bool TryReadWeights(long step, Span<float> destination) => _weights.TryRead(step, destination);
    public bool TryReadIndices(long step, int start, Span<int> destination) => _weights.TryReadIndices(step, start, destination);
    public bool TryClaim(long pool, int blockCount, out int block) => _weights.TryClaim(pool, blockCount, out block);

    public void CloseLink() => _link?.Dispose();

    public void Dispose()
    {
        _link?.Dispose();
        _weights.Dispose();
        _slots.Dispose();
    }

    /// <summary>Opens the offered files (throws SharedMemoryException or RpcException) and connects the link if offered.</summary>
    internal static SharedMemoryAttachment Open(SharedMemoryOffer offer, int parameterCount, string root, string workerId,
        Func<ComputeRequest, ComputeReply> computeOnLink, int maxMessageBytes, ILogger log, ref string note)
    {
        SharedMemoryPaths.Check(offer, root, workerId);
        if (offer.Nonce.Length != MappedFile.NonceBytes)
            throw Invalid($"shared_memory.nonce has {offer.Nonce.Length} bytes, expected {MappedFile.NonceBytes}");
        if (offer.SlotCount is < 1 or > 4096)
            throw Invalid($"shared_memory.slot_count must be 1..4096, found {offer.SlotCount}");
        if (offer.IndexCapacity is < 0 or > 1 << 28)
            throw Invalid($"shared_memory.index_capacity must be 0..{1 << 28}, found {offer.IndexCapacity}");
        // Writable for the pool counter in its header; the worker never writes the weights.
        var weights = MappedFile.Open(offer.WeightsPath, SharedWeights.FileBytes(parameterCount, offer.IndexCapacity),
            offer.Nonce.Span, writable: true);
        MappedFile? slots = null;
        WorkerStepLink? link = null;
        try
        {
            slots = MappedFile.Open(offer.SlotsPath, SharedSlots.FileBytes(parameterCount, offer.SlotCount), offer.Nonce.Span, writable: true);
            if (offer.StepSocketPath.Length > 0)
            {
                try { link = WorkerStepLink.ConnectUnix(offer.StepSocketPath, offer.Nonce.Span, workerId, computeOnLink, maxMessageBytes, log); }
                catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ArgumentException)
                {
                    note = $"step link not connected ({e.Message}); steps over gRPC";
                }
            }
            return new SharedMemoryAttachment(new SharedWeights(weights, parameterCount, offer.IndexCapacity),
                new SharedSlots(slots, parameterCount, offer.SlotCount), link, [.. offer.ComputeCpus]);
        }
        catch
        {
            // Nothing mapped or connected outlives a failed attachment.
            link?.Dispose();
            slots?.Dispose();
            weights.Dispose();
            throw;
        }
    }

    private static RpcException Invalid(string message) => StepRequestCheck.Invalid(message);
}

public static partial class BulkAttachments
{
    static partial void AttachOptional(PrepareRequest request, int parameterCount, WorkerOptions options,
        Func<ComputeRequest, ComputeReply> computeOnLink, ILogger log, ref IBulkAttachment? attachment, ref string note)
    {
        if (request.SharedMemory is not { } offer) return;
        if (!options.SharedMemory)
        {
            note = "turned off on this worker (--shared-memory false)";
            log.LogInformation("shared memory not used: {Why}", note);
            return;
        }
        note = "";
        try
        {
            attachment = SharedMemoryAttachment.Open(offer, parameterCount, options.SharedMemoryDir, request.WorkerId, computeOnLink,
                options.MaxMessageBytes, log, ref note);
            log.LogInformation("weights and gradients go through shared memory ({Path})", offer.WeightsPath);
        }
        catch (SharedMemoryException e)
        {
            note = e.Message;
            log.LogInformation("shared memory not used: {Why}", note);
        }
    }
}
