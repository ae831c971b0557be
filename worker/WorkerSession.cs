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
    internal sealed record Prepared(string ModelJson, string Fingerprint, Network Network, Dataset Train)
    {
        /// <summary>The bulk plane, when the coordinator offered it and it opened; null otherwise (BulkAttachment.cs).</summary>
        public IBulkAttachment? Bulk { get; init; }
        /// <summary>The offer it answers (compared with the next Prepare's), and why it was not taken.</summary>
        public SharedMemoryOffer? Offer { get; init; }
        public string BulkNote { get; init; } = "";
        public string CpuBinding { get; init; } = "not bound";
        /// <summary>The TCP step link, when the coordinator offered one, the bulk plane was not taken and it connected.</summary>
        public WorkerStepLink? TcpLink { get; init; }
        public TcpLinkOffer? TcpOffer { get; init; }
        public string TcpNote { get; init; } = "";
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
    private int[] _bulkBatch = [];
    private string _binding = "not bound";

    private readonly CoordinatorWeights? _weights;
    private readonly Protos.Security.NodeSecurity? _security;
    // The next step's weights, fetched with a request's next_weights_ticket while that request is computed.
    private sealed record Prefetched(long Step, Task<Google.Protobuf.ByteString> Weights);
    private Prefetched? _prefetched;
    private readonly CancellationTokenSource _lifetime = new();

    /// <param name="weights">Where requests with a weights ticket get their weights (null: such requests are refused).</param>
    public WorkerSession(WorkerOptions options, DatasetStore store, ILogger<WorkerSession> log, CoordinatorWeights? weights = null,
        Protos.Security.NodeSecurity? security = null)
    {
        _security = security;
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
            DropPrefetched();
            if (_prepared is { } current && current.ModelJson == request.ModelSpecJson &&
                current.Fingerprint == request.DatasetFingerprint)
            {
                // A link that closed meanwhile is connected again (the coordinator may have dropped it).
                if (LinksCurrent(current, request)) return Reply(current, true, "already prepared");
                // Same model and data, new coordinator files or links (it restarted): only those change.
                var renewed = current with { Bulk = null, Offer = null, TcpLink = null, TcpOffer = null };
                renewed = await AttachAsync(renewed, request, cancellationToken);
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
            var prepared = await AttachAsync(
                new Prepared(request.ModelSpecJson, request.DatasetFingerprint, network, data.Split.Train), request, cancellationToken);
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
        // A fetch would leave the link's thread waiting on another call: over a link the weights come in the request.
        if (request.WeightsSourceCase == ComputeRequest.WeightsSourceOneofCase.WeightsTicket)
            throw Invalid("a step link request carries its weights (or names shared memory), not a weights_ticket");
        _engine.BindCallerLikeComputeThread();
        var task = ComputeAsync(request, inline: true, CancellationToken.None);
        return task.IsCompleted ? task.GetAwaiter().GetResult() : throw new InvalidOperationException("inline compute yielded");
    }

    private async Task<ComputeReply> ComputeAsync(ComputeRequest request, bool inline, CancellationToken cancellationToken)
    {
        var prepared = _prepared;
        var work = StepRequestCheck.Check(request, prepared is null ? null
            : new StepContext(prepared.Network.ParameterCount, prepared.Train.Count, prepared.Bulk?.Slots.SlotCount,
                prepared.Bulk?.IndexCapacity ?? 0, _weights is not null));
        if (work.Weights == WeightsSource.Fetch)
        {
            var (early, ahead) = await TakePrefetchedAsync(request.Step, cancellationToken);
            // The next step's weights start on their way now; the coordinator answers once that step begins. (Unless
            // they already are: this is a second request of a step, and an earlier one asked for them.)
            if (!request.NextWeightsTicket.IsEmpty && !ahead) Prefetch(request.Step + 1, request.NextWeightsTicket);
            // Into a pooled array, given back with the request's weights after the compute (ExecuteAsync's finally).
            request.Weights = early ?? await _weights!.FetchAsync(request.Step, request.WeightsTicket, cancellationToken);
            try { StepRequestCheck.CheckWeights(work, request.Weights.Length, prepared!.Network.ParameterCount); }
            catch
            {
                WireBuffers.Return(request.Weights);
                throw;
            }
        }
        return await ExecuteAsync(request, work, prepared!, inline, cancellationToken);
    }

    /// <summary>Computes a checked request's blocks under the compute lock and builds its reply.</summary>
    private async Task<ComputeReply> ExecuteAsync(ComputeRequest request, StepWork work, Prepared prepared, bool inline,
        CancellationToken cancellationToken)
    {
        var network = prepared.Network;
        var bulk = work.SharedMemory ? prepared.Bulk! : null;
        var (plan, blocks, batch, pool, bf16, encoded) = (work.Plan, work.Blocks, work.Batch, work.Pool, work.Bf16, work.Encoded);
        if (inline) _computeLock.Wait(cancellationToken);
        else await _computeLock.WaitAsync(cancellationToken);
        try
        {
            if (!StillServes(prepared, _prepared, work))
                throw new RpcException(new Status(StatusCode.Aborted, "the worker was prepared again while this request waited"));
            var loss = new double[plan.ShardCount];
            var correct = new int[plan.ShardCount];
            var samples = new int[plan.ShardCount];
            var clock = Stopwatch.StartNew();
            double cpuSeconds = 0;
            // Which of the request's blocks this worker computed: all of them, or in a pool those it claimed.
            var computed = new bool[blocks.Count];
            // Indices on the bulk plane go to a buffer reused under the compute lock.
            if (batch is null && _bulkBatch.Length < plan.BatchSize) _bulkBatch = new int[plan.BatchSize];
            var positions = batch ?? _bulkBatch;
            void LoadIndices(int first, int count)
            {
                if (batch is not null) return;
                var (start, length) = plan.Range(first, count);
                var destination = positions.AsSpan(start, length);
                if (!bulk!.TryReadIndices(work.Step, start, destination))
                    throw new RpcException(new Status(StatusCode.Aborted,
                        $"the shared weights file does not hold the indices of step {work.Step} (the coordinator moved on)"));
                StepRequestCheck.CheckIndices(destination, prepared.Train.Count);
            }
            Func<float[][]?> compute = () =>
            {
                var cpu = Environment.CpuUsage.TotalTime;
                WeightsLoader? load = bulk is null
                    ? encoded
                        ? destination => Core.Kernels.BFloat16.Decode(MemoryMarshal.Cast<byte, ushort>(request.Weights.Span), destination)
                        : destination => MemoryMarshal.Cast<byte, float>(request.Weights.Span).CopyTo(destination)
                    : destination =>
                    {
                        if (!bulk.TryReadWeights(work.Step, destination))
                            throw new RpcException(new Status(StatusCode.Aborted,
                                $"the shared weights file does not hold the weights of step {work.Step} (the coordinator moved on)"));
                    };
                float[][]? result = null;
                if (pool == 0)
                {
                    foreach (var (first, count) in blocks) LoadIndices(first, count);
                    result = _engine.Compute(network, prepared.Train, load, positions, plan, blocks, loss, correct, samples,
                        reuseBuffers: bulk is not null, work.Step, roundLeaves: bf16, keepShards: encoded);
                    for (int i = 0; bulk is not null && i < blocks.Count; i++)
                        bulk.Slots.Write(work.Slots[i], work.Step, blocks[i].First, blocks[i].Count, result[i]);
                    computed.AsSpan().Fill(true);
                }
                else
                {
                    // One block at a time, as long as the pool has blocks left: a worker that runs slower this step (a
                    // busy core, a stall) takes fewer, and the step ends when the last block does, not the slowest share.
                    while (bulk!.TryClaim(pool, blocks.Count, out int n))
                    {
                        LoadIndices(blocks[n].First, blocks[n].Count);
                        var sum = _engine.Compute(network, prepared.Train, load, positions, plan, [blocks[n]], loss, correct,
                            samples, reuseBuffers: true, work.Step, roundLeaves: bf16)[0];
                        load = null; // loaded with the first block
                        bulk.Slots.Write(work.Slots[n], work.Step, blocks[n].First, blocks[n].Count, sum);
                        computed[n] = true;
                    }
                }
                cpuSeconds = (Environment.CpuUsage.TotalTime - cpu).TotalSeconds / _engine.Threads;
                return result;
            };
            var sums = inline ? compute() : await _engine.RunOnComputeThread(compute);
            var reply = new ComputeReply
            {
                ProtocolVersion = Protocol.Version, Step = work.Step, ComputeSeconds = clock.Elapsed.TotalSeconds,
                ComputeCpuSeconds = cpuSeconds,
            };
            for (int i = 0; i < blocks.Count; i++)
            {
                var (first, count) = blocks[i];
                if (!computed[i])
                {
                    reply.Blocks.Add(new BlockResult { FirstShard = first, ShardCount = count, ClaimedElsewhere = new ClaimedElsewhere() });
                    continue;
                }
                var result = new BlockResult { FirstShard = first, ShardCount = count };
                if (bulk is not null) result.InSharedSlot = new SumInSlot();
                // Rented from the wire's pool: StepWire gives it back once the reply is written.
                else result.GradientSum = encoded ? EncodeShards(_engine.ShardSums(i), network.ParameterCount) : WireBuffers.Wrap(sums![i]);
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

    /// <summary>
    /// Whether a request checked against <paramref name="checkedWith"/> can still be computed now that
    /// <paramref name="current"/> is prepared: the same model and data, and — for a request on the bulk plane — the same
    /// attachment (a new one closed the files it names). A Prepare that only connected a new link (the coordinator
    /// reconnecting a closed TCP link while this request waited) changes neither.
    /// </summary>
    internal static bool StillServes(Prepared checkedWith, Prepared? current, StepWork work) =>
        current is not null && ReferenceEquals(current.Network, checkedWith.Network) && ReferenceEquals(current.Train, checkedWith.Train) &&
        (!work.SharedMemory || ReferenceEquals(current.Bulk, checkedWith.Bulk));

    /// <summary>
    /// The weights of <paramref name="step"/> fetched early with the previous request's next-step ticket, or null when
    /// there are none or that fetch failed (the caller fetches with its own ticket); Ahead when the fetch held is for a
    /// later step (kept: it serves that step's request). A fetch for an earlier step is discarded.
    /// </summary>
    private async Task<(Google.Protobuf.ByteString? Weights, bool Ahead)> TakePrefetchedAsync(long step, CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _prefetched, null) is not { } prefetched) return (null, false);
        if (prefetched.Step > step)
        {
            if (Interlocked.CompareExchange(ref _prefetched, prefetched, null) is not null) Discard(prefetched.Weights);
            return (null, true);
        }
        if (prefetched.Step < step)
        {
            Discard(prefetched.Weights);
            return (null, false);
        }
        try { return (await prefetched.Weights.WaitAsync(cancellationToken), false); }
        catch (RpcException e)
        {
            _log.LogDebug("early fetch of step {Step}'s weights failed ({Detail}); fetching them with the request's ticket", step, e.Status.Detail);
            return (null, false);
        }
        catch (OperationCanceledException)
        {
            Discard(prefetched.Weights);
            throw;
        }
    }

    /// <summary>Starts fetching <paramref name="step"/>'s weights with a next-step ticket, replacing an unused prefetch.</summary>
    private void Prefetch(long step, Google.Protobuf.ByteString ticket)
    {
        CancellationToken lifetime;
        try { lifetime = _lifetime.Token; }
        catch (ObjectDisposedException) { return; } // disposed meanwhile: no more fetches
        var fetch = _weights!.FetchAsync(step, ticket, lifetime);
        if (Interlocked.Exchange(ref _prefetched, new Prefetched(step, fetch)) is { } replaced) Discard(replaced.Weights);
    }

    /// <summary>Drops the early fetch held (a new Prepare: it may be another run's, whose step numbers mean other weights).</summary>
    private void DropPrefetched()
    {
        if (Interlocked.Exchange(ref _prefetched, null) is { } prefetched) Discard(prefetched.Weights);
    }

    /// <summary>Gives an unused fetch's pooled weights back once it ends, and observes its failure.</summary>
    private static void Discard(Task<Google.Protobuf.ByteString> fetch) =>
        fetch.ContinueWith(t =>
        {
            if (t.IsCompletedSuccessfully) WireBuffers.Return(t.Result);
            else _ = t.Exception;
        }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

    /// <summary>A block's per-shard sums (already rounded) as bfloat16 vectors; their float arrays go back to the pool.</summary>
    private static Google.Protobuf.ByteString EncodeShards(IReadOnlyList<float[]> shards, int length)
    {
        var bytes = WireBuffers.EncodeBf16(shards, length);
        foreach (var shard in shards) WireBuffers.Return(shard);
        return bytes;
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
        DataSource = source, SharedMemory = prepared.Bulk is not null, SharedMemoryNote = prepared.BulkNote,
        CpuBinding = prepared.CpuBinding, StepLink = prepared.Bulk?.HasLink == true,
        TcpLink = prepared.TcpLink is not null, TcpLinkNote = prepared.TcpNote,
    };

    /// <summary>
    /// Whether what <paramref name="prepared"/> holds answers <paramref name="request"/>'s offers: the same bulk plane
    /// offer with its link open (or none), and the same TCP link offer connected (unless the bulk plane made it moot).
    /// </summary>
    private static bool LinksCurrent(Prepared prepared, PrepareRequest request) =>
        Equals(prepared.Offer, request.SharedMemory) && (prepared.Bulk is not { HasLink: true } bulk || bulk.LinkOpen) &&
        (prepared.Bulk is not null || request.TcpLink is null
            ? prepared.TcpOffer is null
            : Equals(prepared.TcpOffer, request.TcpLink) && prepared.TcpLink?.IsOpen == true);

    /// <summary>
    /// Attaches to the offered bulk plane (when offered and allowed) or TCP link and makes <paramref name="prepared"/>
    /// current. The attachment it replaces is closed under the compute lock, so no running computation still reads it.
    /// </summary>
    private async Task<Prepared> AttachAsync(Prepared prepared, PrepareRequest request, CancellationToken cancellationToken)
    {
        string workerId = request.WorkerId;
        var bulk = BulkAttachments.Attach(request, prepared.Network.ParameterCount, _options, ComputeOnLink, _log, out string note);
        // CPUs: an explicit --cpus list always; with auto, those the coordinator assigned to this same-host worker.
        IReadOnlyList<int> cpus = _options.FixedCpus
            ?? (bulk is not null && _options.Cpus == "auto" ? bulk.OfferedCpus : []);
        if (!cpus.SequenceEqual(_boundTo))
        {
            // Not while a step link computes: binding runs the engine's thread pool, which serves one caller at a time.
            await _computeLock.WaitAsync(CancellationToken.None);
            try { _binding = await _engine.BindAsync(cpus); }
            finally { _computeLock.Release(); }
            _boundTo = _binding.StartsWith("not bound:", StringComparison.Ordinal) ? [] : cpus;
            _log.LogInformation("compute threads {Binding}", _binding);
        }
        // Not on the bulk plane: the steps come over the TCP link when one was offered and connects.
        WorkerStepLink? tcp = null;
        string tcpNote = "";
        if (bulk is null && request.TcpLink is { } tcpOffer)
        {
            try { tcp = await ConnectTcpAsync(tcpOffer, workerId, cancellationToken); }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or RpcException or UriFormatException)
            {
                tcpNote = $"TCP step link not connected ({(e is RpcException r ? r.Status.Detail : e.Message)}); steps over gRPC";
                _log.LogWarning("{Note}", tcpNote);
            }
        }
        prepared = prepared with
        {
            Bulk = bulk, Offer = request.SharedMemory, BulkNote = note, CpuBinding = _binding,
            TcpLink = tcp, TcpOffer = bulk is null ? request.TcpLink : null, TcpNote = tcpNote,
        };
        var previous = _prepared;
        _prepared = prepared;
        // A link it replaces is closed (its thread ends with it); one in the middle of a step finishes that step first.
        if (previous?.TcpLink is { } oldTcp && !ReferenceEquals(oldTcp, tcp)) oldTcp.Dispose();
        if (previous?.Bulk is { } old && !ReferenceEquals(old, bulk))
        {
            // Uncancellable: the previous files must be closed even when this Prepare's caller gave up.
            await _computeLock.WaitAsync(CancellationToken.None);
            try { old.Dispose(); }
            finally { _computeLock.Release(); }
        }
        return prepared;
    }

    /// <summary>Connects the offered TCP step link to the host this worker registered with.</summary>
    private async Task<WorkerStepLink> ConnectTcpAsync(TcpLinkOffer offer, string workerId, CancellationToken cancellationToken)
    {
        if (offer.Port is < 1 or > 65535) throw Invalid($"tcp_link.port must be 1..65535, found {offer.Port}");
        if (offer.Nonce.Length != 16) throw Invalid($"tcp_link.nonce has {offer.Nonce.Length} bytes, expected 16");
        var coordinator = new Uri(_options.Coordinator);
        string host = coordinator.IdnHost.Trim('[', ']');
        // TLS exactly when the coordinator's gRPC is TLS, its certificate verified as there.
        var tls = coordinator.Scheme != Uri.UriSchemeHttps ? null
            : _security?.Tls?.ClientOptions(host) ?? new System.Net.Security.SslClientAuthenticationOptions { TargetHost = host };
        var link = await WorkerStepLink.ConnectTcpAsync(host, offer.Port, offer.Nonce.Memory, workerId, ComputeOnLink,
            _options.MaxMessageBytes, _log, tls, cancellationToken);
        _log.LogInformation("steps over the TCP step link to {Host}:{Port}{Tls}", host, offer.Port, tls is null ? "" : " (TLS)");
        return link;
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

    private static RpcException Invalid(string message) => StepRequestCheck.Invalid(message);
    private static RpcException Refuse(string message) => StepRequestCheck.Refuse(message);

    /// <summary>
    /// Stops the step links, waits (30 s at most) for a computation in progress, then releases the engine and closes
    /// the bulk plane — not while a computation could still read it. Safe to call twice.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _lifetime.Cancel();
        DropPrefetched();
        var bulk = _prepared?.Bulk;
        bulk?.CloseLink();
        _prepared?.TcpLink?.Dispose();
        bool idle = _computeLock.Wait(TimeSpan.FromSeconds(30));
        _engine.Dispose();
        if (idle) bulk?.Dispose();
        _prepareLock.Dispose();
        _computeLock.Dispose();
        _lifetime.Dispose();
    }
}
