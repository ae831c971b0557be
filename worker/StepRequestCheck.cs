// The worker's check of a ComputeGradients request: a pure function from the request and what the worker was prepared
// with to the work it asks for (StepWork), or a status naming the first problem (InvalidArgument for a malformed
// request, FailedPrecondition for one this worker cannot serve). Nothing is fetched, read or locked here: WorkerSession
// executes what this returns. A change to the step protocol is a change to the proto, this check and the executor.
using DistTrain.Core.Training;
using DistTrain.Protos;
using Grpc.Core;

namespace DistTrain.Worker;

/// <summary>What the worker was prepared with, as far as a request's check needs it.</summary>
/// <param name="SharedSlots">Slots of the accepted shared-memory files; null when the worker did not accept them.</param>
/// <param name="SharedIndexCapacity">Sample indices the shared weights file holds (with SharedSlots).</param>
/// <param name="CanFetch">Whether the worker can fetch weights from the coordinator (a weights ticket).</param>
public readonly record struct StepContext(int ParameterCount, int SampleCount, int? SharedSlots, int SharedIndexCapacity, bool CanFetch);

/// <summary>Where a request's weights are: in its body, to be fetched with its ticket, or in the shared weights file.</summary>
public enum WeightsSource { Request, Fetch, SharedMemory }

/// <summary>A checked request: what to compute, from which weights, and where its sums go.</summary>
/// <param name="Batch">The sample index of every batch position the blocks cover; null when they are in shared memory.</param>
/// <param name="Pool">0, or the shared pool whose blocks are claimed one at a time.</param>
/// <param name="Bf16">The 16-bit wire: weights rounded, every shard's gradient rounded before it is summed.</param>
/// <param name="Encoded">Weights and sums cross the network as bfloat16 (the 16-bit wire without shared memory).</param>
/// <param name="Slots">Each block's shared slot (with shared memory), in block order.</param>
public sealed record StepWork(long Step, ShardPlan Plan, IReadOnlyList<(int First, int Count)> Blocks, int[]? Batch, long Pool,
    bool Bf16, bool Encoded, WeightsSource Weights, IReadOnlyList<int> Slots)
{
    public bool SharedMemory => Weights == WeightsSource.SharedMemory;

    /// <summary>The bytes the weights take on the wire: one float32 or bfloat16 value per parameter.</summary>
    public long WeightBytes(int parameterCount) => WeightBytes(Encoded, parameterCount);

    internal static long WeightBytes(bool encoded, int parameterCount) => (encoded ? 2L : 4L) * parameterCount;
}

public static class StepRequestCheck
{
    /// <summary>The longest weights ticket accepted.</summary>
    public const int MaxTicketBytes = 64;

    /// <summary>
    /// The work <paramref name="request"/> asks for, or an RpcException naming its first problem. Sample indices in the
    /// request are checked against the dataset here; indices in shared memory when their block is computed.
    /// </summary>
    /// <param name="prepared">What the worker was prepared with; null when it has not been.</param>
    public static StepWork Check(ComputeRequest request, StepContext? prepared)
    {
        Protocol.Check(request.ProtocolVersion, "ComputeGradients");
        var context = prepared ?? throw Refuse("this worker has not been prepared (call Prepare first)");
        if (request.WeightsVersion != request.Step)
            throw Refuse($"weights version {request.WeightsVersion} does not match step {request.Step}");
        // The oneof says where the weights are; claim_pool and the shared indices exist only with shared memory.
        var sharedStep = request.SharedMemory;
        bool shared = sharedStep is not null;
        if (shared && context.SharedSlots is null)
            throw Refuse("the request uses shared memory but this worker did not accept it in Prepare");
        long pool = sharedStep?.ClaimPool ?? 0;
        if (pool is < 0 or > Protocol.MaxClaimPool)
            throw Invalid($"shared_memory.claim_pool must be 0..{Protocol.MaxClaimPool}, found {pool}");
        if (request.Wire is not (WirePrecision.Float32 or WirePrecision.Bfloat16))
            throw Invalid($"wire must be WIRE_PRECISION_FLOAT32 or WIRE_PRECISION_BFLOAT16, found {(int)request.Wire}");
        bool bf16 = request.Wire == WirePrecision.Bfloat16;
        // The 16-bit wire encodes what crosses the network; shared memory stays float32 (already rounded).
        bool encoded = bf16 && !shared;
        bool ticket = request.WeightsSourceCase == ComputeRequest.WeightsSourceOneofCase.WeightsTicket;
        var source = shared ? WeightsSource.SharedMemory : ticket ? WeightsSource.Fetch : WeightsSource.Request;
        if (source == WeightsSource.Fetch)
        {
            if (request.WeightsTicket.Length is 0 or > MaxTicketBytes)
                throw Invalid($"weights_ticket has {request.WeightsTicket.Length} bytes, expected 1..{MaxTicketBytes}");
            if (request.NextWeightsTicket.Length > MaxTicketBytes)
                throw Invalid($"next_weights_ticket has {request.NextWeightsTicket.Length} bytes, at most {MaxTicketBytes}");
            if (!context.CanFetch) throw Refuse("this worker cannot fetch weights from the coordinator");
        }
        else if (!request.NextWeightsTicket.IsEmpty)
            throw Invalid("next_weights_ticket is set but the request has no weights_ticket");
        if (source == WeightsSource.Request) CheckWeights(encoded, request.Weights.Length, context.ParameterCount);
        if (request.BatchSize < 1 || request.ShardSize < 1)
            throw Invalid($"batch_size {request.BatchSize} and shard_size {request.ShardSize} must be ≥ 1");
        if (request.BatchSize > context.SampleCount)
            throw Invalid($"batch_size {request.BatchSize} exceeds the dataset's {context.SampleCount} samples");
        var plan = new ShardPlan(request.BatchSize, request.ShardSize);
        // A pool's blocks are small (their sums go to shared memory, not into the reply): up to one per shard.
        int maxBlocks = pool != 0 ? plan.ShardCount : MessageLimits.MaxBlocksPerRequest(plan.ShardCount);
        if (request.Blocks.Count == 0 || request.Blocks.Count > maxBlocks)
            throw Invalid($"a request must name 1..{maxBlocks} blocks, found {request.Blocks.Count}");

        bool sharedIndices = sharedStep?.Indices == true;
        if (sharedIndices && context.SharedIndexCapacity < plan.BatchSize)
            throw Invalid($"the shared weights file holds {context.SharedIndexCapacity} indices, fewer than batch_size {plan.BatchSize}");
        var batch = sharedIndices ? null : new int[plan.BatchSize];
        var blocks = new List<(int First, int Count)>(request.Blocks.Count);
        var slots = new List<int>(shared ? request.Blocks.Count : 0);
        var covered = new bool[plan.ShardCount];
        var slotUsed = shared ? new bool[context.SharedSlots!.Value] : null;
        foreach (var block in request.Blocks)
        {
            if (!GradientReduction.IsAlignedBlock(block.FirstShard, block.ShardCount, plan.ShardCount))
                throw Invalid($"block [{block.FirstShard}, +{block.ShardCount}) is not an aligned block of {plan.ShardCount} shards");
            for (int s = block.FirstShard; s < block.FirstShard + block.ShardCount; s++)
            {
                if (covered[s]) throw Invalid($"shard {s} is named by two blocks");
                covered[s] = true;
            }
            var (start, length) = plan.Range(block.FirstShard, block.ShardCount);
            if (batch is null)
            {
                if (!block.SampleIndices.IsEmpty)
                    throw Invalid($"block at shard {block.FirstShard} carries indices but the request says they are in shared memory");
            }
            else
            {
                if (!WireArrays.TryReadInts(block.SampleIndices, out var indices) || indices.Length != length)
                    throw Invalid($"block at shard {block.FirstShard} carries {block.SampleIndices.Length} index bytes, expected {4 * length}");
                CheckIndices(indices, context.SampleCount);
                indices.CopyTo(batch.AsSpan(start, length));
            }
            if (slotUsed is not null)
            {
                if ((uint)block.SharedSlot >= (uint)slotUsed.Length || slotUsed[block.SharedSlot])
                    throw Invalid($"block at shard {block.FirstShard} names shared slot {block.SharedSlot}; slots are 0..{slotUsed.Length - 1}, each once");
                slotUsed[block.SharedSlot] = true;
                slots.Add(block.SharedSlot);
            }
            blocks.Add((block.FirstShard, block.ShardCount));
        }
        return new StepWork(request.Step, plan, blocks, batch, pool, bf16, encoded, source, slots);
    }

    /// <summary>Checks the length of weights that came in the request or from a fetch.</summary>
    public static void CheckWeights(StepWork work, int bytes, int parameterCount) => CheckWeights(work.Encoded, bytes, parameterCount);

    private static void CheckWeights(bool encoded, int bytes, int parameterCount)
    {
        long expected = StepWork.WeightBytes(encoded, parameterCount);
        if (bytes != expected)
            throw Invalid($"weights has {bytes} bytes, expected {expected} ({parameterCount} {(encoded ? "bfloat16" : "float32")})");
    }

    /// <summary>Every index inside the dataset.</summary>
    public static void CheckIndices(ReadOnlySpan<int> indices, int count)
    {
        foreach (int index in indices)
            if ((uint)index >= (uint)count)
                throw Invalid($"sample index {index} is outside the dataset's 0..{count - 1}");
    }

    public static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));
    public static RpcException Refuse(string message) => new(new Status(StatusCode.FailedPrecondition, message));
}
