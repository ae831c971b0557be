// Distributed mode's gradient source and the data plane of its steps. The trainer's step becomes a StepRequested
// event; the machine's commands become ComputeGradients calls (gRPC or a step link, with weights, indices and
// gradients in the messages or, for the workers on the bulk plane, beside them: BulkPlane.cs), each reply is checked block by block (ReplyCheck) and reported as an event, the
// blocks the machine accepts are kept, and the pairwise tree over them is completed — the same tree as local mode, so
// the summed gradient is bit-identical whoever computed which block. What to send to whom, and when to give up, is
// the machine's; this class only moves bytes.
using System.Collections.Concurrent;
using System.Diagnostics;
using DistTrain.Coordinator.Control;
using DistTrain.Core.Training;
using DistTrain.Protos;
using Grpc.Core;

namespace DistTrain.Coordinator.Distributed;

public sealed class StepTransport : IStepTransport, IGradientSource
{
    /// <summary>The step handed over by the trainer, until the machine completes or fails it.</summary>
    private sealed class StepInHand(GradientRequest request, GradientResult result, Google.Protobuf.ByteString weights)
    {
        public GradientRequest Request { get; } = request;
        public GradientResult Result { get; } = result;
        // One encoding of the weights for every request of the step; they do not change until the step returns.
        public Google.Protobuf.ByteString Weights { get; } = weights;
        // No asynchronous continuations: the trainer goes on on the thread that completed the step.
        public TaskCompletionSource Done { get; } = new();
        public Stopwatch Clock { get; } = Stopwatch.StartNew();
        public bool SharedIndices { get; set; }
        public long Pool { get; set; }
        public double SlowestCompute;
        // The machine's thread only:
        public List<Task> Running { get; } = [];
        public Dictionary<(int Attempt, int Dispatch), CancellationTokenSource> Cancels { get; } = [];
        // Filled by the requests' own threads, read when the machine says what to keep.
        public ConcurrentDictionary<(int Attempt, int Dispatch), Received> Replies { get; } = new();
    }

    /// <param name="Encoded">
    /// Per block, the sum of squares of a sum that is still the bfloat16 vector it came as, null for any other block
    /// (the array is null when none is).
    /// </param>
    private sealed record Received(SendRequest Request, ComputeReply Reply, IGradientSlots? Slots, double?[]? Encoded);

    /// <summary>
    /// A ticket for the weights of a step not yet begun, handed out with a request of the step before it: the worker's
    /// fetch with it waits here until that step's requests go out (Send), so the weights stream while the request
    /// travels. Used once; dropped when the step it names ends or the transport closes.
    /// </summary>
    private sealed class Prefetch(long step, string workerId)
    {
        public long Step { get; } = step;
        public string WorkerId { get; } = workerId;
        // The step whose requests went out to this worker, or null: the step did not come to it.
        public TaskCompletionSource<StepInHand?> Ready { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public int Claimed;
    }

    private readonly int _parameterCount;
    private readonly WorkerConnections _connections;
    private readonly IBulkPlane? _bulk;
    private readonly Action<ClusterEvent> _post;
    private readonly List<float[]> _buffers = [];
    // The kept blocks whose sums are still bfloat16 (the reply's pooled bytes), by block; the tree decodes them as it
    // reads them, and they go back to the pool when the attempt ends.
    private readonly List<Google.Protobuf.ByteString?> _encoded = [];
    // The step's weights as bfloat16 (16-bit wire), reused from step to step: requests hold it only until they end.
    private float[] _bf16Weights = [];
    private StepInHand? _step;
    // The weights tickets of the requests in flight (hex): a worker presents one to fetch the step's weights.
    private readonly ConcurrentDictionary<string, (StepInHand Step, string WorkerId)> _tickets = new();
    // The tickets for the next step's weights (hex), at most one per request sent.
    private readonly ConcurrentDictionary<string, Prefetch> _prefetches = new();
    private volatile bool _closed;

    /// <param name="bulk">Where the workers on the bulk plane read the weights and leave their sums (null: none).</param>
    /// <param name="post">Where events go (the cluster's driver).</param>
    /// <param name="weightsTransfer">
    /// Whether gRPC workers fetch the weights (Coordinator.FetchWeights with a per-request ticket) instead of receiving
    /// them in the request body; the response direction of .NET's HTTP/2 carries a megabyte in about half the time.
    /// </param>
    public StepTransport(int parameterCount, WorkerConnections connections, IBulkPlane? bulk, Action<ClusterEvent> post,
        WeightsTransfer weightsTransfer = WeightsTransfer.Push)
    {
        (_parameterCount, _connections, _bulk, _post, _weightsTransfer) = (parameterCount, connections, bulk, post, weightsTransfer);
    }

    /// <summary>
    /// Weights of at least this many bytes are fetched under WeightsTransfer.Auto: above a receiver's default HTTP/2
    /// stream window (Kestrel's 768 KiB) a request body waits for a window update, and fetching (early) is the faster
    /// path; below it, fetching measured no faster than sending them in the request (docs/performance.md).
    /// </summary>
    public const int AutoFetchBytes = 768 * 1024;

    private readonly WeightsTransfer _weightsTransfer;

    /// <summary>Whether a gRPC worker fetches weights of <paramref name="bytes"/> bytes under <paramref name="mode"/>.</summary>
    public static bool Fetches(WeightsTransfer mode, int bytes) =>
        mode == WeightsTransfer.Fetch || (mode == WeightsTransfer.Auto && bytes >= AutoFetchBytes);

    /// <summary>Traffic and timing totals, for the distributed benchmark and the dashboard's byte counters.</summary>
    public TrafficStats Traffic { get; } = new();

    public async ValueTask ComputeAsync(GradientRequest request, GradientResult result, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var step = new StepInHand(request, result, EncodeWeights(request));
        if (Interlocked.CompareExchange(ref _step, step, null) is not null)
            throw new InvalidOperationException($"step {request.Step} started while another is in progress");
        _post(new StepRequested(request.Step, request.Plan));
        await using (cancellationToken.Register(() => _post(new StepAbandoned(request.Step, "cancelled"))))
            await step.Done.Task.ConfigureAwait(false);
    }

    /// <summary>
    /// The weights of <paramref name="step"/> for the request that holds <paramref name="ticket"/>, while that request
    /// is in flight; or, for the next-step ticket of a request of the step before, once this step's requests go out to
    /// that worker (waiting at most <see cref="PrefetchWait"/>). Null otherwise: a wrong, used or stale ticket, another
    /// step, a step that did not come to that worker. Counted as sent to that worker.
    /// </summary>
    public async ValueTask<Google.Protobuf.ByteString?> WeightsForAsync(long step, ReadOnlyMemory<byte> ticket, CancellationToken cancellationToken)
    {
        if (ticket.Length != TicketBytes) return null;
        string key = Convert.ToHexString(ticket.Span);
        if (_tickets.TryGetValue(key, out var holder))
            return Serve(holder.Step, step, holder.WorkerId);
        if (!_prefetches.TryGetValue(key, out var prefetch) || prefetch.Step != step || Interlocked.Exchange(ref prefetch.Claimed, 1) != 0)
            return null;
        try
        {
            var ready = await prefetch.Ready.Task.WaitAsync(PrefetchWait, cancellationToken).ConfigureAwait(false);
            return ready is null ? null : Serve(ready, step, prefetch.WorkerId, early: true);
        }
        catch (TimeoutException) { return null; }
        finally { _prefetches.TryRemove(key, out _); }
    }

    /// <summary>How long a fetch of the next step's weights waits for that step to begin before it is refused.</summary>
    public static readonly TimeSpan PrefetchWait = TimeSpan.FromSeconds(20);

    /// <summary>The weights fetches answered early (with a next-step ticket), and all of them: for the benchmark.</summary>
    public (long Early, long All) WeightsFetches => (Interlocked.Read(ref _earlyFetches), Interlocked.Read(ref _fetches));
    private long _earlyFetches, _fetches;

    private Google.Protobuf.ByteString? Serve(StepInHand holder, long step, string workerId, bool early = false)
    {
        if (holder.Request.Step != step || !ReferenceEquals(Volatile.Read(ref _step), holder)) return null;
        Traffic.Add(workerId, holder.Weights.Length, 0, request: false);
        Interlocked.Increment(ref _fetches);
        if (early) Interlocked.Increment(ref _earlyFetches);
        return holder.Weights;
    }

    /// <summary>Answers the waiting fetches of <paramref name="step"/>'s weights by <paramref name="workerId"/>.</summary>
    private void ReleasePrefetches(StepInHand step, string workerId)
    {
        foreach (var prefetch in _prefetches.Values)
            if (prefetch.Step == step.Request.Step && prefetch.WorkerId == workerId) prefetch.Ready.TrySetResult(step);
    }

    /// <summary>Refuses the fetches waiting for steps up to <paramref name="last"/> (ended, or not to come).</summary>
    private void DropPrefetches(long last)
    {
        foreach (var (key, prefetch) in _prefetches)
            if (prefetch.Step <= last && _prefetches.TryRemove(key, out _)) prefetch.Ready.TrySetResult(null);
    }

    /// <summary>Refuses every waiting fetch and every later one (the run is over): none holds the server open.</summary>
    public void Close()
    {
        _closed = true;
        DropPrefetches(long.MaxValue);
    }

    public const int TicketBytes = 16;

    /// <summary>The weights as the wire carries them: float32 wrapped in place, or once rounded and encoded as bfloat16.</summary>
    private Google.Protobuf.ByteString EncodeWeights(GradientRequest request)
    {
        if (!request.RoundToBf16) return WireArrays.Wrap(request.Parameters);
        int length = request.Parameters.Length;
        // Encoded by the optimizer as it wrote the weights: wrapped as they are.
        if (request.Bf16Parameters.Length == 2 * length) return Google.Protobuf.UnsafeByteOperations.UnsafeWrap(request.Bf16Parameters);
        if (_bf16Weights.Length != (length + 1) / 2) _bf16Weights = new float[(length + 1) / 2];
        Core.Kernels.BFloat16.Encode(request.Parameters, System.Runtime.InteropServices.MemoryMarshal.Cast<float, ushort>(_bf16Weights.AsSpan()));
        return WireArrays.Wrap(_bf16Weights, 2 * length);
    }

    /// <summary>
    /// A 16-bit reply's blocks, made ready for the checks and the reduction. A one-shard block stays the bfloat16
    /// vector it came as (the tree decodes it piece by piece as it reads it: no float32 vector of its own is written and
    /// read back); its sum of squares, for the reply's check, is taken now from a decoded piece at a time. A block of
    /// several shards becomes the float32 sum of its per-shard vectors along the tree (as the worker and local mode sum
    /// them). A block whose payload is not one vector per shard is left empty, so it is judged malformed. Returns, per
    /// block, the sum of squares of a block that stays encoded (NaN when a NaN is among its values) and null for the
    /// others; null when no block stays encoded.
    /// </summary>
    private double?[]? DecodeBf16(ComputeReply reply, SendRequest send, int totalShards)
    {
        double?[]? encoded = null;
        for (int i = 0; i < reply.Blocks.Count && i < send.Blocks.Count; i++)
        {
            var block = reply.Blocks[i];
            if (block.SumCase != BlockResult.SumOneofCase.GradientSum || block.GradientSum.IsEmpty) continue;
            int count = send.Blocks[i].ShardCount;
            if (block.GradientSum.Length != 2L * count * _parameterCount)
            {
                block.GradientSum = Google.Protobuf.ByteString.Empty;
                continue;
            }
            var bits = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(block.GradientSum.Span);
            if (count == 1)
            {
                (encoded ??= new double?[send.Blocks.Count])[i] = SumOfSquaresBf16(bits);
                continue;
            }
            var shards = new List<(int, int, float[])>(count);
            for (int k = 0; k < count; k++)
            {
                var vector = WireBuffers.Rent(_parameterCount);
                Core.Kernels.BFloat16.Decode(bits.Slice(k * _parameterCount, _parameterCount), vector);
                shards.Add((send.Blocks[i].FirstShard + k, 1, vector));
            }
            var sum = BlockTree.Complete(shards, totalShards, _parameterCount);
            for (int k = 1; k < count; k++) WireBuffers.Return(shards[k].Item3);
            WireBuffers.Return(block.GradientSum);
            block.GradientSum = WireBuffers.Wrap(sum);
        }
        return encoded;
    }

    /// <summary>Floats decoded at a time by <see cref="SumOfSquaresBf16"/>: 32 KiB, well inside the L1 cache.</summary>
    private const int DecodePiece = 8 * 1024;

    [ThreadStatic] private static float[]? t_decodePiece;

    /// <summary>
    /// The sum of squares of the decoded <paramref name="bits"/>, with the bits of Clipping's (the norm ReplyCheck would
    /// otherwise compute), decoding a piece at a time into a buffer that stays in cache.
    /// </summary>
    internal static double SumOfSquaresBf16(ReadOnlySpan<ushort> bits)
    {
        var piece = t_decodePiece ??= new float[DecodePiece];
        Span<double> lanes = stackalloc double[Clipping.SquareSums.Lanes];
        var sums = new Clipping.SquareSums(lanes);
        int n = bits.Length, bulk = n / Clipping.SquareSums.Lanes * Clipping.SquareSums.Lanes;
        for (int start = 0; start < n; start += DecodePiece)
        {
            int length = Math.Min(DecodePiece, n - start);
            var values = piece.AsSpan(0, length);
            Core.Kernels.BFloat16.Decode(bits.Slice(start, length), values);
            int inBulk = Math.Min(start + length, bulk) - start;
            if (inBulk == length) sums.Add(values);
            else
            {
                // The last piece: its bulk part, then the tail (fewer than Lanes values) in order.
                sums.Add(values[..inBulk]);
                return sums.Finish(values[inBulk..]);
            }
        }
        return sums.Finish(default);
    }

    public void BeginAttempt(BeginAttempt command)
    {
        var step = Current(command.Step);
        var request = step.Request;
        step.Result.Reset(request.Plan.ShardCount);
        step.Replies.Clear();
        while (_buffers.Count < command.BlockCount) _buffers.Add(new float[_parameterCount]);
        while (_encoded.Count < command.BlockCount) _encoded.Add(null);
        ReleaseEncoded(); // what an earlier attempt kept
        // The bulk plane's members read the weights there, published once for all of them before any request goes
        // out; with the batch's indices, when the plane has room: the requests then carry neither.
        step.SharedIndices = command.SharedWeights &&
            _bulk!.Publish(request.Step, request.Parameters, request.BatchIndices.AsSpan(), request.RoundToBf16);
        step.Pool = command.Pool ? _bulk!.OpenPool() : 0;
    }

    public void Send(IReadOnlyList<SendRequest> requests)
    {
        var step = Current(requests[0].Step);
        // The fetches already waiting for these weights go first: they stream while the requests travel.
        foreach (var send in requests) ReleasePrefetches(step, send.WorkerId);
        foreach (var send in SendOrder(requests, r => _connections.CpusOf(r.WorkerId, r.Generation)))
        {
            if (!_connections.TryGet(send.WorkerId, send.Generation, out var connection))
            {
                _post(new RequestFailed(send.Step, send.Attempt, send.Dispatch, $"no connection to {send.WorkerId}#{send.Generation}"));
                continue;
            }
            var cancel = new CancellationTokenSource();
            step.Cancels[(send.Attempt, send.Dispatch)] = cancel;
            step.Running.Add(RequestAsync(step, send, connection, cancel.Token));
        }
    }

    public void Cancel(CancelRequest command)
    {
        if (Volatile.Read(ref _step) is { } step && step.Request.Step == command.Step &&
            step.Cancels.TryGetValue((command.Attempt, command.Dispatch), out var cancel))
            cancel.Cancel();
    }

    public void Keep(KeepBlocks command)
    {
        var step = Current(command.Step);
        if (!step.Replies.TryRemove((command.Attempt, command.Dispatch), out var received))
            throw new InvalidOperationException($"no reply to keep for {command.Step}.{command.Attempt}#{command.Dispatch}");
        var (send, reply) = (received.Request, received.Reply);
        foreach (int b in command.Blocks)
        {
            int i = IndexOf(send.Blocks, b);
            var block = reply.Blocks[i];
            if (received.Encoded?[i] is not null)
            {
                // Still bfloat16: kept as it came (the tree decodes it as it reads it); its float buffer is the tree's scratch.
                WireBuffers.Return(_encoded[b]);
                _encoded[b] = block.GradientSum;
                block.GradientSum = Google.Protobuf.ByteString.Empty;
                KeepStatistics(step, block);
                continue;
            }
            if (!ReplyCheck.TryGradient(block, send.Blocks[i], send.Step, received.Slots, _parameterCount, out var gradient))
                throw new InvalidOperationException($"block {send.Blocks[i]} of step {send.Step} was accepted but is unreadable");
            // A sum read into a pooled array of its own (over gRPC or a TCP link) becomes the block's buffer, and the
            // buffer goes to the pool for the next reply: no copy. One in a slot of the bulk plane (or unpooled) is copied.
            // A float32 sum replaces whatever bfloat16 sum this block held.
            WireBuffers.Return(_encoded[b]);
            _encoded[b] = null;
            if (WireBuffers.Take(block.GradientSum, _parameterCount) is { } taken)
            {
                WireBuffers.Return(_buffers[b]);
                _buffers[b] = taken;
            }
            else gradient.CopyTo(_buffers[b]);
            KeepStatistics(step, block);
        }
        // Copied out: the sums' pooled arrays (StepWire) serve the next replies.
        foreach (var block in reply.Blocks) WireBuffers.Return(block.GradientSum);
    }

    private static void KeepStatistics(StepInHand step, BlockResult block)
    {
        for (int k = 0; k < block.ShardCount; k++)
        {
            int shard = block.FirstShard + k;
            step.Result.ShardLoss[shard] = block.ShardLoss[k];
            step.Result.ShardCorrect[shard] = block.ShardCorrect[k];
            step.Result.ShardSamples[shard] = block.ShardSamples[k];
        }
    }

    /// <summary>Gives the kept bfloat16 sums back to the wire's pool (the attempt ended, or another begins).</summary>
    private void ReleaseEncoded()
    {
        for (int b = 0; b < _encoded.Count; b++)
        {
            WireBuffers.Return(_encoded[b]);
            _encoded[b] = null;
        }
    }

    public Action? Complete(CompleteStep command)
    {
        var step = Current(command.Step);
        var order = new List<(int First, int Count, int Block)>(command.Blocks.Count);
        for (int b = 0; b < command.Blocks.Count; b++)
        {
            var record = command.Blocks[b];
            order.Add((record.FirstShard, record.ShardCount, b));
            step.Result.Blocks.Add(record);
        }
        // The tree takes its blocks in shard order; a pool's blocks come in the order they were handed out (largest
        // first), after the blocks assigned to other workers.
        order.Sort((a, b) => a.First.CompareTo(b.First));
        var blocks = new List<(int, int, float[])>(order.Count);
        List<ReadOnlyMemory<byte>>? encoded = null;
        foreach (var (first, count, b) in order)
        {
            blocks.Add((first, count, _buffers[b]));
            if (_encoded[b] is { } bits) (encoded ??= [.. Enumerable.Repeat(ReadOnlyMemory<byte>.Empty, order.Count)])[blocks.Count - 1] = bits.Memory;
        }
        var plan = step.Request.Plan;
        try
        {
            var squares = step.Result.TakeSquares(step.Request);
            BlockTree.CompleteInto(blocks, plan.ShardCount, step.Result.GradientSum.AsSpan(0, _parameterCount), Math.Max(1, step.Request.MeanOf),
                squares.IsEmpty ? default : step.Request.NormSlices, squares, encoded);
            step.Result.IsMean = step.Request.MeanOf > 0;
            step.Result.HasSquares = !squares.IsEmpty;
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidOperationException($"{e.Message} (blocks {string.Join(", ", command.Blocks.Select(r => $"[{r.FirstShard}+{r.ShardCount} {r.Executor}]"))} of {plan.ShardCount} shards)", e);
        }
        finally { ReleaseEncoded(); }
        Traffic.EndStep(step.Clock.Elapsed.TotalSeconds, Volatile.Read(ref step.SlowestCompute));
        return Finish(step, null);
    }

    public Action? Fail(FailStep command)
    {
        if (Volatile.Read(ref _step) is not { } step) return null;
        ReleaseEncoded();
        return Finish(step, command.Cancelled ? new OperationCanceledException(command.Reason) : new WorkersUnavailableException(command.Reason));
    }

    /// <summary>
    /// Hands the step back once its requests have settled: a request the step no longer needed (a pool member still
    /// busy) was cancelled, and none may outlive the step whose weights it may still be sending. (An early fetch's
    /// reply still being written may then read weights the optimizer is changing; only a request the step no longer
    /// waits for can be computing on them, and its reply is ignored.)
    /// </summary>
    private Action Finish(StepInHand step, Exception? error)
    {
        Volatile.Write(ref _step, null);
        DropPrefetches(step.Request.Step);
        var running = step.Running.Where(t => !t.IsCompleted).ToArray();
        void Done()
        {
            foreach (var cancel in step.Cancels.Values) cancel.Dispose();
            if (error is null) step.Done.TrySetResult();
            else step.Done.TrySetException(error);
        }
        if (running.Length == 0) return Done;
        return () => Task.WhenAll(running).ContinueWith(_ => Done(), CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private StepInHand Current(long step) =>
        Volatile.Read(ref _step) is { } current && current.Request.Step == step ? current
            : throw new InvalidOperationException($"step {step} is not the step in hand");

    /// <summary>One request, from message to event; never throws.</summary>
    private async Task RequestAsync(StepInHand step, SendRequest send, WorkerConnection worker, CancellationToken cancellationToken)
    {
        long sent = 0;
        var plan = step.Request.Plan;
        bool shared = worker.Slots is not null;
        bool indicesShared = shared && step.SharedIndices;
        // A gRPC worker fetches the weights with a ticket: they then travel in a reply, not in this request's body. (Over
        // a TCP step link they go in the request: nothing there waits for flow control.)
        byte[]? ticket = shared || worker.TcpLink || !Fetches(_weightsTransfer, step.Weights.Length)
            ? null : System.Security.Cryptography.RandomNumberGenerator.GetBytes(TicketBytes);
        string? ticketKey = ticket is null ? null : Convert.ToHexString(ticket);
        if (ticketKey is not null) _tickets[ticketKey] = (step, send.WorkerId);
        // And one for the next step's weights, which the worker may fetch (and wait for) at once.
        byte[]? next = ticket is null || _closed ? null : System.Security.Cryptography.RandomNumberGenerator.GetBytes(TicketBytes);
        if (next is not null)
        {
            string key = Convert.ToHexString(next);
            _prefetches[key] = new Prefetch(send.Step + 1, send.WorkerId);
            // Closed meanwhile: nothing will drop it at a step's end any more.
            if (_closed && _prefetches.TryRemove(key, out var late)) late.Ready.TrySetResult(null);
        }
        try
        {
            var message = new ComputeRequest
            {
                ProtocolVersion = Protocol.Version, Step = send.Step, WeightsVersion = send.Step,
                NextWeightsTicket = next is null ? Google.Protobuf.ByteString.Empty : Google.Protobuf.UnsafeByteOperations.UnsafeWrap(next),
                BatchSize = plan.BatchSize, ShardSize = plan.ShardSize,
                Wire = step.Request.RoundToBf16 ? WirePrecision.Bfloat16 : WirePrecision.Float32,
            };
            // One source of weights (a oneof): a ticket to fetch them, the weights themselves, or the shared file.
            if (shared) message.SharedMemory = new SharedStep { Indices = indicesShared, ClaimPool = send.Pooled ? step.Pool : 0 };
            else if (ticket is not null) message.WeightsTicket = Google.Protobuf.UnsafeByteOperations.UnsafeWrap(ticket);
            else message.Weights = step.Weights;
            foreach (var block in send.Blocks)
            {
                var (start, length) = plan.Range(block.FirstShard, block.ShardCount);
                message.Blocks.Add(new BlockRange
                {
                    FirstShard = block.FirstShard, ShardCount = block.ShardCount,
                    SampleIndices = indicesShared ? Google.Protobuf.ByteString.Empty : WireArrays.Copy(step.Request.BatchIndices.AsSpan(start, length)),
                    // The attempt's block number: unique among its blocks, so requests never share a slot.
                    SharedSlot = shared ? block.Index : 0,
                });
            }
            sent = message.CalculateSize();
            var reply = await worker.Client.ComputeAsync(message, DateTime.UtcNow + send.Timeout, cancellationToken).ConfigureAwait(false);
            long received = reply.CalculateSize();
            var encoded = step.Request.RoundToBf16 ? DecodeBf16(reply, send, plan.ShardCount) : null;
            var verdicts = new BlockVerdict[send.Blocks.Count];
            var norms = new double[send.Blocks.Count];
            int samples = 0;
            for (int i = 0; i < verdicts.Length; i++)
            {
                verdicts[i] = ReplyCheck.Judge(reply, i, send.Blocks[i], plan, send.Step, worker.Slots, send.Pooled, _parameterCount,
                    out norms[i], encoded?[i]);
                if (verdicts[i] != BlockVerdict.Elsewhere) samples += plan.Range(send.Blocks[i].FirstShard, send.Blocks[i].ShardCount).Length;
            }
            // Read from the shared file when it computed anything: the weights, and the indices of what it computed.
            long vector = 4L * _parameterCount;
            long sharedRead = !shared || samples == 0 ? 0 : vector + (indicesShared ? 4L * samples : 0);
            Traffic.Add(send.WorkerId, sent, received, sharedRead, reply.Blocks.Count(b => b.SumCase == BlockResult.SumOneofCase.InSharedSlot) * vector);
            lock (step) step.SlowestCompute = Math.Max(step.SlowestCompute, reply.ComputeSeconds);
            if (cancellationToken.IsCancellationRequested) return; // the machine gave up on it meanwhile
            step.Replies[(send.Attempt, send.Dispatch)] = new Received(send, reply, worker.Slots, encoded);
            _post(new ReplyReceived(send.Step, send.Attempt, send.Dispatch, verdicts, reply.ComputeSeconds, reply.ComputeCpuSeconds, norms));
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException or IOException or InvalidOperationException)
        {
            // Sent all the same (a request the step no longer needed, too).
            Traffic.Add(send.WorkerId, sent, 0);
            if (cancellationToken.IsCancellationRequested) return;
            _post(new RequestFailed(send.Step, send.Attempt, send.Dispatch,
                e is RpcException rpc ? $"{rpc.StatusCode}: {PeerText.Printable(rpc.Status.Detail)}" : e.Message));
        }
        finally
        {
            if (ticketKey is not null) _tickets.TryRemove(ticketKey, out _);
        }
    }

    /// <summary>
    /// The requests with those to workers bound to the CPU this thread runs on last: a woken worker takes its CPU from
    /// this thread at once, and the requests still to send would wait for the scheduler to move this thread to another
    /// CPU (milliseconds, while the other workers wait for their requests).
    /// </summary>
    internal static IEnumerable<T> SendOrder<T>(IReadOnlyList<T> requests, Func<T, IReadOnlyList<int>?> cpusOf)
    {
        int cpu = CpuAffinity.CurrentCpu();
        if (cpu < 0) return requests;
        return requests.OrderBy(r => cpusOf(r)?.Contains(cpu) == true ? 1 : 0); // stable: order kept otherwise
    }

    private static int IndexOf(IReadOnlyList<BlockSpan> blocks, int index)
    {
        for (int i = 0; i < blocks.Count; i++) if (blocks[i].Index == index) return i;
        return -1;
    }
}
