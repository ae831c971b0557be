// The worker's domain state: the model and dataset it was prepared with, and the validated execution of one step's
// blocks. Every request is checked at this edge (InvalidArgument for bad shapes, FailedPrecondition for a wrong
// protocol version or an unprepared worker) so nothing from the network can crash the process.
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using DistTrain.Core;
using DistTrain.Core.Data;
using DistTrain.Core.Model;
using DistTrain.Core.Training;
using DistTrain.Protos;
using Grpc.Core;

namespace DistTrain.Worker;

public sealed class WorkerSession : IDisposable
{
    private sealed record Prepared(string ModelJson, string Fingerprint, Network Network, Dataset Train)
    {
        /// <summary>The same-host files, when the coordinator offered them and they opened; null otherwise.</summary>
        public SharedFiles? Shared { get; init; }
        public SharedMemoryOffer? Offer { get; init; }
        public string SharedNote { get; init; } = "";
        public string CpuBinding { get; init; } = "not bound";
    }

    private sealed record SharedFiles(SharedWeights Weights, SharedSlots Slots) : IDisposable
    {
        /// <summary>The step link, when the offer named a socket and it connected.</summary>
        public WorkerStepLink? Link { get; set; }

        public void Dispose()
        {
            Link?.Dispose();
            Weights.Dispose();
            Slots.Dispose();
        }
    }

    private readonly WorkerOptions _options;
    private readonly DatasetStore _store;
    private readonly ILogger<WorkerSession> _log;
    private readonly BlockComputeEngine _engine;
    private readonly SemaphoreSlim _prepareLock = new(1, 1);
    private readonly SemaphoreSlim _computeLock = new(1, 1);
    private volatile Prepared? _prepared;
    private long _steps, _blocks;
    private int _disposed;
    private IReadOnlyList<int> _boundTo = [];
    private int[] _sharedBatch = [];
    private string _binding = "not bound";

    private readonly CoordinatorWeights? _weights;

    /// <param name="weights">Where requests with a weights ticket get their weights (null: such requests are refused).</param>
    public WorkerSession(WorkerOptions options, DatasetStore store, ILogger<WorkerSession> log, CoordinatorWeights? weights = null)
    {
        _options = options;
        _store = store;
        _log = log;
        _weights = weights;
        _engine = new BlockComputeEngine(options.EffectiveThreads);
    }

    /// <summary>The id the coordinator gave this worker (set by the registration loop).</summary>
    public string WorkerId { get; set; } = "";
    public int Cores => _engine.Threads;

    public async Task<PrepareReply> PrepareAsync(PrepareRequest request, CancellationToken cancellationToken)
    {
        Protocol.Check(request.ProtocolVersion, "Prepare");
        if (request.MaxRequestBytes > _options.MaxMessageBytes)
            throw Refuse($"the model needs requests of {request.MaxRequestBytes} bytes but this worker accepts at most {_options.MaxMessageBytes} (raise --max-message-bytes)");
        if (!DatasetStore.IsValidFingerprint(request.DatasetFingerprint))
            throw Invalid("dataset_fingerprint must be a plain token of 1..128 letters, digits, '-' or '_'");
        var modelSpec = Parse<ModelSpec>(request.ModelSpecJson, "model_spec_json");
        var dataSpec = Parse<DataSpec>(request.DataSpecJson, "data_spec_json");

        await _prepareLock.WaitAsync(cancellationToken);
        try
        {
            if (_prepared is { } current && current.ModelJson == request.ModelSpecJson &&
                current.Fingerprint == request.DatasetFingerprint)
            {
                // A link that closed meanwhile is connected again (the coordinator may have dropped it).
                if (Equals(current.Offer, request.SharedMemory) && current.Shared?.Link?.IsOpen != false)
                    return Reply(current, true, "already prepared");
                // Same model and data, new coordinator files (it restarted): only the shared memory changes.
                var renewed = current with { Shared = null, Offer = null };
                renewed = await AttachSharedAsync(renewed, request.SharedMemory, request.WorkerId, cancellationToken);
                return Reply(renewed, true, "already prepared");
            }
            Network network;
            try { network = new Network(modelSpec); }
            catch (UserInputException e) { throw Refuse($"cannot build the model: {e.Message}"); }
            // Loading can take seconds; it runs off the request thread so heartbeats keep flowing.
            var found = await Task.Run(() => _store.Find(dataSpec, request.DatasetFingerprint), cancellationToken);
            if (found is not { } data)
                return new PrepareReply { ProtocolVersion = Protocol.Version, DataPresent = false, ParameterCount = network.ParameterCount };
            try { network.CheckCompatible(data.Split.Train); }
            catch (UserInputException e) { throw Refuse($"the model does not fit the data: {e.Message}"); }
            var prepared = await AttachSharedAsync(
                new Prepared(request.ModelSpecJson, request.DatasetFingerprint, network, data.Split.Train),
                request.SharedMemory, request.WorkerId, cancellationToken);
            _log.LogInformation("prepared {Model} ({Parameters} parameters) on {Samples} samples from {Source}",
                modelSpec.Describe(), network.ParameterCount, data.Split.Train.Count, data.Source);
            return Reply(prepared, true, data.Source);
        }
        finally { _prepareLock.Release(); }
    }

    public Task<long> ReceiveDatasetAsync(IAsyncStreamReader<DatasetChunk> chunks, CancellationToken cancellationToken) =>
        _store.ReceiveAsync(chunks, cancellationToken);

    public Task<ComputeReply> ComputeAsync(ComputeRequest request, CancellationToken cancellationToken) =>
        ComputeAsync(request, inline: false, cancellationToken);

    /// <summary>A step link's request, computed on the calling (link) thread: no hand-off to the compute thread.</summary>
    private ComputeReply ComputeOnLink(ComputeRequest request)
    {
        _engine.BindCallerLikeComputeThread();
        var task = ComputeAsync(request, inline: true, CancellationToken.None);
        return task.IsCompleted ? task.GetAwaiter().GetResult() : throw new InvalidOperationException("inline compute yielded");
    }

    private async Task<ComputeReply> ComputeAsync(ComputeRequest request, bool inline, CancellationToken cancellationToken)
    {
        Protocol.Check(request.ProtocolVersion, "ComputeGradients");
        var prepared = _prepared ?? throw Refuse("this worker has not been prepared (call Prepare first)");
        var network = prepared.Network;
        if (request.WeightsVersion != request.Step)
            throw Refuse($"weights version {request.WeightsVersion} does not match step {request.Step}");
        var shared = request.SharedMemory
            ? prepared.Shared ?? throw Refuse("the request uses shared memory but this worker did not accept it in Prepare")
            : null;
        long pool = request.ClaimPool;
        if (pool != 0 && shared is null)
            throw Refuse("claim_pool needs the shared weights file, but the request does not use shared memory");
        if (pool is < 0 or > SharedWeights.MaxPoolId)
            throw Invalid($"claim_pool must be 0..{SharedWeights.MaxPoolId}, found {pool}");
        if (request.Wire is not (WirePrecision.Float32 or WirePrecision.Bfloat16))
            throw Invalid($"wire must be WIRE_PRECISION_FLOAT32 or WIRE_PRECISION_BFLOAT16, found {(int)request.Wire}");
        bool bf16 = request.Wire == WirePrecision.Bfloat16;
        // The 16-bit wire encodes what crosses the network; shared memory stays float32 (already rounded).
        bool encoded = bf16 && shared is null;
        int valueBytes = encoded ? 2 : 4;
        if (!request.WeightsTicket.IsEmpty)
        {
            if (shared is not null || !request.Weights.IsEmpty)
                throw Invalid("weights_ticket is set but the request also carries weights or uses shared memory");
            if (request.WeightsTicket.Length > 64)
                throw Invalid($"weights_ticket has {request.WeightsTicket.Length} bytes, at most 64");
            if (_weights is null) throw Refuse("this worker cannot fetch weights from the coordinator");
            // Into a pooled array, given back with the request's weights after the compute (finally, below).
            request.Weights = await _weights.FetchAsync(request.Step, request.WeightsTicket, cancellationToken);
        }
        long expectedWeightBytes = shared is null ? (long)valueBytes * network.ParameterCount : 0;
        if (request.Weights.Length != expectedWeightBytes)
            throw Invalid(shared is null
                ? $"weights has {request.Weights.Length} bytes, expected {expectedWeightBytes} ({network.ParameterCount} {(encoded ? "bfloat16" : "float32")})"
                : $"weights has {request.Weights.Length} bytes but the request says they are in shared memory");
        if (request.BatchSize < 1 || request.ShardSize < 1)
            throw Invalid($"batch_size {request.BatchSize} and shard_size {request.ShardSize} must be ≥ 1");
        if (request.BatchSize > prepared.Train.Count)
            throw Invalid($"batch_size {request.BatchSize} exceeds the dataset's {prepared.Train.Count} samples");
        var plan = new ShardPlan(request.BatchSize, request.ShardSize);
        // A pool's blocks are small (their sums go to shared memory, not into the reply): up to one per shard.
        int maxBlocks = pool != 0 ? plan.ShardCount : MessageLimits.MaxBlocksPerRequest(plan.ShardCount);
        if (request.Blocks.Count == 0 || request.Blocks.Count > maxBlocks)
            throw Invalid($"a request must name 1..{maxBlocks} blocks, found {request.Blocks.Count}");

        bool sharedIndices = request.IndicesInSharedMemory;
        if (sharedIndices && (shared is null || shared.Weights.IndexCapacity < plan.BatchSize))
            throw Invalid(shared is null
                ? "the request says its indices are in shared memory but it does not use shared memory"
                : $"the shared weights file holds {shared.Weights.IndexCapacity} indices, fewer than batch_size {plan.BatchSize}");
        // Indices from the request are checked here; indices in shared memory when their block is computed.
        var batch = sharedIndices ? null : new int[plan.BatchSize];
        var blocks = new List<(int First, int Count)>(request.Blocks.Count);
        var covered = new bool[plan.ShardCount];
        var slotUsed = shared is null ? null : new bool[shared.Slots.SlotCount];
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
                CheckIndices(indices, prepared.Train.Count);
                indices.CopyTo(batch.AsSpan(start, length));
            }
            if (slotUsed is not null)
            {
                if ((uint)block.SharedSlot >= (uint)slotUsed.Length || slotUsed[block.SharedSlot])
                    throw Invalid($"block at shard {block.FirstShard} names shared slot {block.SharedSlot}; slots are 0..{slotUsed.Length - 1}, each once");
                slotUsed[block.SharedSlot] = true;
            }
            blocks.Add((block.FirstShard, block.ShardCount));
        }

        if (inline) _computeLock.Wait(cancellationToken);
        else await _computeLock.WaitAsync(cancellationToken);
        try
        {
            // A Prepare that ran since this request was checked may have closed the files it names.
            if (!ReferenceEquals(prepared, _prepared))
                throw new RpcException(new Status(StatusCode.Aborted, "the worker was prepared again while this request waited"));
            var loss = new double[plan.ShardCount];
            var correct = new int[plan.ShardCount];
            var samples = new int[plan.ShardCount];
            var clock = Stopwatch.StartNew();
            double cpuSeconds = 0;
            // Which of the request's blocks this worker computed: all of them, or in a pool those it claimed.
            var computed = new bool[blocks.Count];
            // Indices in shared memory go to a buffer reused under the compute lock.
            if (batch is null && _sharedBatch.Length < plan.BatchSize) _sharedBatch = new int[plan.BatchSize];
            var positions = batch ?? _sharedBatch;
            void LoadIndices(int first, int count)
            {
                if (batch is not null) return;
                var (start, length) = plan.Range(first, count);
                var destination = positions.AsSpan(start, length);
                if (!shared!.Weights.TryReadIndices(request.Step, start, destination))
                    throw new RpcException(new Status(StatusCode.Aborted,
                        $"the shared weights file does not hold the indices of step {request.Step} (the coordinator moved on)"));
                CheckIndices(destination, prepared.Train.Count);
            }
            Func<float[][]?> work = () =>
            {
                var cpu = Environment.CpuUsage.TotalTime;
                WeightsLoader? load = shared is null
                    ? encoded
                        ? destination => Core.Kernels.BFloat16.Decode(MemoryMarshal.Cast<byte, ushort>(request.Weights.Span), destination)
                        : destination => MemoryMarshal.Cast<byte, float>(request.Weights.Span).CopyTo(destination)
                    : destination =>
                    {
                        if (!shared.Weights.TryRead(request.Step, destination))
                            throw new RpcException(new Status(StatusCode.Aborted,
                                $"the shared weights file does not hold the weights of step {request.Step} (the coordinator moved on)"));
                    };
                float[][]? result = null;
                if (pool == 0)
                {
                    foreach (var (first, count) in blocks) LoadIndices(first, count);
                    result = _engine.Compute(network, prepared.Train, load, positions, plan, blocks, loss, correct, samples,
                        reuseBuffers: shared is not null, request.Step, roundLeaves: bf16, keepShards: encoded);
                    for (int i = 0; shared is not null && i < blocks.Count; i++)
                        shared.Slots.Write(request.Blocks[i].SharedSlot, request.Step, blocks[i].First, blocks[i].Count, result[i]);
                    computed.AsSpan().Fill(true);
                }
                else
                {
                    // One block at a time, as long as the pool has blocks left: a worker that runs slower this step (a
                    // busy core, a stall) takes fewer, and the step ends when the last block does, not the slowest share.
                    while (shared!.Weights.TryClaim(pool, blocks.Count, out int n))
                    {
                        LoadIndices(blocks[n].First, blocks[n].Count);
                        var sum = _engine.Compute(network, prepared.Train, load, positions, plan, [blocks[n]], loss, correct,
                            samples, reuseBuffers: true, request.Step, roundLeaves: bf16)[0];
                        load = null; // loaded with the first block
                        shared.Slots.Write(request.Blocks[n].SharedSlot, request.Step, blocks[n].First, blocks[n].Count, sum);
                        computed[n] = true;
                    }
                }
                cpuSeconds = (Environment.CpuUsage.TotalTime - cpu).TotalSeconds / _engine.Threads;
                return result;
            };
            var sums = inline ? work() : await _engine.RunOnComputeThread(work);
            var reply = new ComputeReply
            {
                ProtocolVersion = Protocol.Version, Step = request.Step, ComputeSeconds = clock.Elapsed.TotalSeconds,
                ComputeCpuSeconds = cpuSeconds,
            };
            for (int i = 0; i < blocks.Count; i++)
            {
                var (first, count) = blocks[i];
                if (!computed[i])
                {
                    reply.Blocks.Add(new BlockResult { FirstShard = first, ShardCount = count, ClaimedElsewhere = true });
                    continue;
                }
                var result = new BlockResult
                {
                    FirstShard = first, ShardCount = count, GradientInSharedMemory = shared is not null,
                    // Rented from the wire's pool: StepWire gives it back once the reply is written.
                    GradientSum = shared is not null ? Google.Protobuf.ByteString.Empty
                        : encoded ? EncodeShards(_engine.ShardSums(i), network.ParameterCount)
                        : WireBuffers.Wrap(sums![i]),
                };
                for (int s = first; s < first + count; s++)
                {
                    result.ShardLoss.Add(loss[s]);
                    result.ShardCorrect.Add(correct[s]);
                    result.ShardSamples.Add(samples[s]);
                }
                reply.Blocks.Add(result);
            }
            Interlocked.Increment(ref _steps);
            Interlocked.Add(ref _blocks, computed.Count(c => c));
            return reply;
        }
        finally
        {
            _computeLock.Release();
            // The weights were copied into the engine: a pooled buffer from StepWire serves the next request.
            WireBuffers.Return(request.Weights);
        }
    }

    /// <summary>A block's per-shard sums (already rounded) as bfloat16 vectors; their float arrays go back to the pool.</summary>
    private static Google.Protobuf.ByteString EncodeShards(IReadOnlyList<float[]> shards, int length)
    {
        var bytes = WireBuffers.EncodeBf16(shards, length);
        foreach (var shard in shards) WireBuffers.Return(shard);
        return bytes;
    }

    private static void CheckIndices(ReadOnlySpan<int> indices, int count)
    {
        foreach (int index in indices)
            if ((uint)index >= (uint)count)
                throw Invalid($"sample index {index} is outside the dataset's 0..{count - 1}");
    }

    public StatusReply Status(StatusRequest request)
    {
        Protocol.Check(request.ProtocolVersion, "Status");
        var prepared = _prepared;
        return new StatusReply
        {
            ProtocolVersion = Protocol.Version, WorkerId = WorkerId, Cores = Cores, Prepared = prepared is not null,
            DatasetFingerprint = prepared?.Fingerprint ?? "", StepsComputed = Interlocked.Read(ref _steps),
            BlocksComputed = Interlocked.Read(ref _blocks),
        };
    }

    private static PrepareReply Reply(Prepared prepared, bool present, string source) => new()
    {
        ProtocolVersion = Protocol.Version, DataPresent = present, ParameterCount = prepared.Network.ParameterCount,
        DataSource = source, SharedMemory = prepared.Shared is not null, SharedMemoryNote = prepared.SharedNote,
        CpuBinding = prepared.CpuBinding, StepLink = prepared.Shared?.Link is not null,
    };

    /// <summary>
    /// Opens the offered files (when offered and allowed) and makes <paramref name="prepared"/> current. The files
    /// it replaces are closed under the compute lock, so no running computation still reads them.
    /// </summary>
    private async Task<Prepared> AttachSharedAsync(Prepared prepared, SharedMemoryOffer? offer, string workerId,
        CancellationToken cancellationToken)
    {
        string note = "";
        SharedFiles? shared = null;
        if (offer is null) note = "not offered";
        else if (!_options.SharedMemory) note = "turned off on this worker (--shared-memory false)";
        else
        {
            try { shared = OpenShared(offer, prepared.Network.ParameterCount, _options.SharedMemoryDir, workerId); }
            catch (SharedMemoryException e) { note = e.Message; }
            if (shared is not null && offer.StepSocketPath.Length > 0)
            {
                try
                {
                    shared.Link = WorkerStepLink.Connect(offer.StepSocketPath, offer.Nonce.Span, workerId, ComputeOnLink,
                        _options.MaxMessageBytes, _log);
                }
                catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException)
                {
                    note = $"step link not connected ({e.Message}); steps over gRPC";
                }
            }
        }
        // CPUs: an explicit --cpus list always; with auto, those the coordinator assigned to this same-host worker.
        IReadOnlyList<int> cpus = _options.FixedCpus
            ?? (shared is not null && _options.Cpus == "auto" ? offer!.ComputeCpus : []);
        if (!cpus.SequenceEqual(_boundTo))
        {
            // Not while a step link computes: binding runs the engine's thread pool, which serves one caller at a time.
            await _computeLock.WaitAsync(CancellationToken.None);
            try { _binding = await _engine.BindAsync(cpus); }
            finally { _computeLock.Release(); }
            _boundTo = _binding.StartsWith("not bound:", StringComparison.Ordinal) ? [] : cpus;
            _log.LogInformation("compute threads {Binding}", _binding);
        }
        prepared = prepared with { Shared = shared, Offer = offer, SharedNote = note, CpuBinding = _binding };
        var previous = _prepared;
        _prepared = prepared;
        if (previous?.Shared is { } old && !ReferenceEquals(old, shared))
        {
            // Uncancellable: the previous files must be closed even when this Prepare's caller gave up.
            await _computeLock.WaitAsync(CancellationToken.None);
            try { old.Dispose(); }
            finally { _computeLock.Release(); }
        }
        if (shared is not null) _log.LogInformation("weights and gradients go through shared memory ({Path})", offer!.WeightsPath);
        else if (offer is not null) _log.LogInformation("shared memory not used: {Why}", note);
        return prepared;
    }

    private static SharedFiles OpenShared(SharedMemoryOffer offer, int parameterCount, string root, string workerId)
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
        try
        {
            var slots = MappedFile.Open(offer.SlotsPath, SharedSlots.FileBytes(parameterCount, offer.SlotCount), offer.Nonce.Span, writable: true);
            return new SharedFiles(new SharedWeights(weights, parameterCount, offer.IndexCapacity),
                new SharedSlots(slots, parameterCount, offer.SlotCount));
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    private static T Parse<T>(string json, string field)
    {
        try
        {
            return JsonSerializer.Deserialize<T>(json, TrainingConfig.Json)
                ?? throw Invalid($"{field} is empty");
        }
        catch (JsonException e) { throw Invalid($"{field} is not valid JSON: {e.Message}"); }
    }

    private static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));
    private static RpcException Refuse(string message) => new(new Status(StatusCode.FailedPrecondition, message));

    /// <summary>
    /// Stops the step link, waits (30 s at most) for a computation in progress, then releases the engine and unmaps
    /// the shared files — not while a computation could still read them. Safe to call twice.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        var shared = _prepared?.Shared;
        shared?.Link?.Dispose();
        bool idle = _computeLock.Wait(TimeSpan.FromSeconds(30));
        _engine.Dispose();
        if (idle) shared?.Dispose();
        _prepareLock.Dispose();
        _computeLock.Dispose();
    }
}
