// Distributed mode's gradient source: a thin adapter that turns StepAssignment's dispatches into concurrent
// ComputeGradients calls, validates every returned block (range, length, per-shard counts, finiteness), feeds the
// verdicts back, and completes the pairwise tree over the accepted block sums — the same tree as local mode, so
// the summed gradient is bit-identical whoever computed which block.
using System.Diagnostics;
using DistTrain.Core.Training;
using DistTrain.Protos;
using Grpc.Core;

namespace DistTrain.Coordinator.Distributed;

/// <summary>No worker can take part in the step (all lost or refused, or a block nobody can compute).</summary>
public sealed class WorkersUnavailableException(string message) : Exception(message);

public sealed class RemoteGradientSource : IGradientSource
{
    private sealed record Outcome(Dispatch Dispatch, ComputeReply? Reply, Exception? Error, double Seconds, long BytesSent);
    private sealed record Open(PlannedWorker Worker, CancellationTokenSource Cancel);

    /// <summary>Restarts of one step (each needs a worker lost and another ready) before it is given up.</summary>
    private const int MaxAttempts = 100;

    private readonly int _parameterCount;
    private readonly WorkerRegistry _registry;
    private readonly TimeSpan _computeTimeout;
    private readonly Action<string> _log;
    private readonly WorkerWait _wait;
    private readonly List<float[]> _buffers = [];
    private readonly SharedWeights? _sharedWeights;
    private long _nextPool;

    /// <summary><paramref name="sharedWeights"/>: where same-host workers read the weights (null: none use shared memory).</summary>
    public RemoteGradientSource(int parameterCount, WorkerRegistry registry, TimeSpan computeTimeout, Action<string> log,
        WorkerWait? wait = null, SharedWeights? sharedWeights = null)
    {
        _sharedWeights = sharedWeights;
        _parameterCount = parameterCount;
        _registry = registry;
        _computeTimeout = computeTimeout;
        _log = log;
        _wait = wait ?? WorkerWait.None(registry);
    }

    /// <summary>Traffic and timing totals, for the distributed benchmark.</summary>
    public TrafficStats Traffic { get; } = new();

    /// <summary>
    /// Runs the step with the workers ready at its start. When every worker that could compute a missing block is
    /// lost, the step starts over with whoever is ready then (after waiting, if configured): the blocks are a pure
    /// function of the weights and indices, so a restarted step gives the same bits.
    /// </summary>
    public async ValueTask ComputeAsync(GradientRequest request, GradientResult result, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        for (int attempt = 1; ; attempt++)
        {
            var workers = _registry.BeginStep(request.Step);
            if (workers.Count == 0)
            {
                await _wait.UntilReadyAsync(request.Step, cancellationToken).ConfigureAwait(false);
                workers = _registry.BeginStep(request.Step);
                if (workers.Count == 0) continue; // lost again between the wait and the plan
            }
            var state = new StepAssignment(request.Plan.ShardCount, workers.Select(w => (w.Id, w.Throughput)).ToList(),
                _sharedWeights is null ? null : workers.Where(w => w.Shared is not null).Select(w => w.Id).ToHashSet());
            var (slowest, lostAny) = await RunAsync(request, result, state, workers, cancellationToken).ConfigureAwait(false);
            if (state.IsComplete)
            {
                Collect(state, result, request.Plan);
                Traffic.EndStep(clock.Elapsed.TotalSeconds, slowest);
                return;
            }
            string reason = $"step {request.Step}: {state.FailureReason}";
            // A block every worker rejected is not a membership problem: starting over would only repeat it.
            if (!lostAny || attempt >= MaxAttempts) throw new WorkersUnavailableException(reason);
            _log($"{reason}; starting the step over with the workers ready now");
        }
    }

    /// <summary>One attempt: dispatches until complete or stuck; returns the slowest compute time and whether a worker was lost.</summary>
    private async Task<(double Slowest, bool LostAny)> RunAsync(GradientRequest request, GradientResult result,
        StepAssignment state, IReadOnlyList<PlannedWorker> workers, CancellationToken cancellationToken)
    {
        var plan = request.Plan;
        result.Reset(plan.ShardCount);
        while (_buffers.Count < state.BlockCount) _buffers.Add(new float[_parameterCount]);
        // One wrap of the weights for every request of the step; they do not change until the step returns.
        var weights = WireArrays.Wrap(request.Parameters);
        // Same-host workers read them from the shared file, written once for all of them before any request goes out.
        // With the batch's indices, when they fit: the requests then carry neither.
        bool sharedIndices = _sharedWeights is not null && request.BatchIndices.Count <= _sharedWeights.IndexCapacity;
        if (_sharedWeights is not null && workers.Any(w => w.Shared is not null))
            _sharedWeights.Write(request.Step, request.Parameters, sharedIndices ? request.BatchIndices.AsSpan() : default);
        // A new pool id per attempt: a member still working on an earlier attempt can claim nothing of this one.
        long pool = 0;
        if (state.HasPool)
        {
            pool = _nextPool = _nextPool % SharedWeights.MaxPoolId + 1;
            _sharedWeights!.OpenPool(pool);
        }
        var byId = workers.ToDictionary(w => w.Id);
        var open = new Dictionary<int, Open>();

        using var stepCancellation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var running = new List<Task<Outcome>>();
        double slowestCompute = 0;
        bool lostAny = false;
        void Send(Dispatch dispatch)
        {
            var cancel = CancellationTokenSource.CreateLinkedTokenSource(stepCancellation.Token);
            open[dispatch.Id] = new Open(byId[dispatch.Worker], cancel);
            running.Add(SendAsync(dispatch, byId[dispatch.Worker], request, weights, state, dispatch.Pooled ? pool : 0,
                sharedIndices, cancel.Token));
        }
        try
        {
            foreach (var dispatch in SendOrder(state.Start(), byId)) Send(dispatch);
            while (!state.IsComplete && state.FailureReason is null)
            {
                if (running.Count == 0) throw new InvalidOperationException($"step {request.Step}: no request in flight but blocks are missing");
                // Heartbeats can declare a worker lost while its request hangs (a stopped process, a cut link): the
                // registry's change wakes this loop, and the request is cancelled so its blocks move on now.
                var membership = _registry.WaitForChangeAsync(stepCancellation.Token);
                var finished = await Task.WhenAny(running.Append<Task>(membership)).ConfigureAwait(false);
                if (finished == membership || finished.IsCanceled)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    foreach (var (_, o) in open)
                        if (!_registry.IsCurrent(o.Worker.Id, o.Worker.Client)) o.Cancel.Cancel();
                    continue;
                }
                var task = (Task<Outcome>)finished;
                running.Remove(task);
                var outcome = await task.ConfigureAwait(false);
                var dispatch = outcome.Dispatch;
                open.Remove(dispatch.Id, out var sent);
                sent!.Cancel.Dispose();
                StepProgress progress;
                if (outcome.Error is { } error)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    string why = error is RpcException rpc ? $"{rpc.StatusCode}: {rpc.Status.Detail}"
                        : error is OperationCanceledException ? "lost (no heartbeat)" : error.Message;
                    _registry.RecordError(dispatch.Worker);
                    _registry.MarkLost(dispatch.Worker, sent.Worker.Client, $"request failed at step {request.Step}: {why}");
                    _log($"step {request.Step}: worker {dispatch.Worker} failed ({why}); its blocks go to the others");
                    lostAny = true;
                    progress = state.OnFailure(dispatch.Id);
                }
                else
                {
                    var reply = outcome.Reply!;
                    var shared = sent.Worker.Shared;
                    var verdicts = dispatch.Blocks.Select((b, i) => Judge(reply, i, b, state.BlockRange(b), plan, request.Step, shared, dispatch.Pooled)).ToList();
                    progress = state.OnReply(dispatch.Id, verdicts);
                    if (verdicts.Any(v => v != BlockVerdict.Valid)) _registry.RecordError(dispatch.Worker);
                    foreach (int b in progress.Accepted)
                    {
                        var block = reply.Blocks[IndexOf(dispatch.Blocks, b)];
                        Gradient(block, b, state.BlockRange(b), request.Step, shared, out var gradient);
                        Keep(block, gradient, _buffers[b], result);
                    }
                    // Only what this worker computed (in a pool, the blocks it claimed).
                    int samples = dispatch.Blocks.Where((_, i) => verdicts[i] != BlockVerdict.Elsewhere)
                        .Sum(b => plan.Range(state.BlockRange(b).FirstShard, state.BlockRange(b).ShardCount).Length);
                    // Speed = samples over the request's time with the compute counted as the CPU time it used: a worker
                    // that shares cores with others is not mistaken for a slow one (fewer shards would make it wait
                    // for cores longer still), while transfer time still counts.
                    double seconds = reply.ComputeCpuSeconds > 0 && reply.ComputeSeconds > 0
                        ? Math.Max(1e-6, outcome.Seconds - Math.Min(outcome.Seconds, reply.ComputeSeconds) + reply.ComputeCpuSeconds)
                        : outcome.Seconds;
                    _registry.RecordThroughput(dispatch.Worker, samples, seconds, progress.Accepted.Count);
                    slowestCompute = Math.Max(slowestCompute, reply.ComputeSeconds);
                    long sharedBytes = 4L * _parameterCount;
                    // Read from the shared file when it computed anything: the weights, and the indices of what it
                    // computed when they are there too.
                    long sharedRead = shared is null || samples == 0 ? 0 : sharedBytes + (sharedIndices ? 4L * samples : 0);
                    Traffic.Add(dispatch.Worker, outcome.BytesSent, reply.CalculateSize(),
                        sharedRead, reply.Blocks.Count(b => b.GradientInSharedMemory) * sharedBytes);
                }
                foreach (var note in state.Notes) _log($"step {request.Step}: {note}");
                state.Notes.Clear();
                foreach (var next in progress.Next) Send(next);
            }
        }
        finally
        {
            // A fatal error leaves requests in flight; they must not outlive the step that owns their buffers.
            stepCancellation.Cancel();
            if (running.Count > 0) await Task.WhenAll(running).ConfigureAwait(false);
            foreach (var (_, o) in open) o.Cancel.Dispose();
            // Requests the step no longer needed (a pool member still busy when every block was in) were sent all the same.
            foreach (var task in running) Traffic.Add(task.Result.Dispatch.Worker, task.Result.BytesSent, 0);
        }
        return (slowestCompute, lostAny);
    }

    /// <summary>
    /// The first requests with those to workers bound to the CPU this thread runs on last: a woken worker takes its
    /// CPU from this thread at once, and the requests still to send would wait for the scheduler to move this thread
    /// to another CPU (milliseconds, while the other workers wait for their requests).
    /// </summary>
    internal static IEnumerable<Dispatch> SendOrder(IReadOnlyList<Dispatch> dispatches, IReadOnlyDictionary<string, PlannedWorker> byId)
    {
        int cpu = CpuAffinity.CurrentCpu();
        if (cpu < 0) return dispatches;
        return dispatches.OrderBy(d => byId[d.Worker].Cpus?.Contains(cpu) == true ? 1 : 0); // stable: order kept otherwise
    }

    private void Collect(StepAssignment state, GradientResult result, ShardPlan plan)
    {
        var blocks = new List<(int, int, float[])>(state.BlockCount);
        for (int b = 0; b < state.BlockCount; b++)
        {
            var (first, count) = state.BlockRange(b);
            blocks.Add((first, count, _buffers[b]));
            result.Blocks.Add(new BlockRecord(first, count, state.ExecutorOf(b)!));
        }
        BlockTree.Complete(blocks, plan.ShardCount, _parameterCount).AsSpan(0, _parameterCount).CopyTo(result.GradientSum);
    }

    private async Task<Outcome> SendAsync(Dispatch dispatch, PlannedWorker worker, GradientRequest step,
        Google.Protobuf.ByteString weights, StepAssignment state, long pool, bool sharedIndices, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        long sent = 0;
        bool shared = worker.Shared is not null;
        bool indicesShared = shared && sharedIndices;
        try
        {
            var message = new ComputeRequest
            {
                ProtocolVersion = Protocol.Version, Step = step.Step, WeightsVersion = step.Step,
                Weights = shared ? Google.Protobuf.ByteString.Empty : weights,
                BatchSize = step.Plan.BatchSize, ShardSize = step.Plan.ShardSize, SharedMemory = shared, ClaimPool = pool,
                IndicesInSharedMemory = indicesShared,
            };
            foreach (int b in dispatch.Blocks)
            {
                var (first, count) = state.BlockRange(b);
                var (start, length) = step.Plan.Range(first, count);
                message.Blocks.Add(new BlockRange
                {
                    FirstShard = first, ShardCount = count,
                    SampleIndices = indicesShared ? Google.Protobuf.ByteString.Empty : WireArrays.Copy(step.BatchIndices.AsSpan(start, length)),
                    // The step's block number: unique among the step's blocks, so requests never share a slot.
                    SharedSlot = shared ? b : 0,
                });
            }
            sent = message.CalculateSize();
            var reply = await worker.Client.ComputeAsync(message, DateTime.UtcNow + _computeTimeout, cancellationToken).ConfigureAwait(false);
            return new Outcome(dispatch, reply, null, clock.Elapsed.TotalSeconds, sent);
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException or IOException or InvalidOperationException)
        {
            return new Outcome(dispatch, null, e, clock.Elapsed.TotalSeconds, sent);
        }
    }

    /// <summary>
    /// Checks reply block <paramref name="i"/> (the step's block <paramref name="b"/>) against what was asked; shapes
    /// first, then finiteness.
    /// </summary>
    private BlockVerdict Judge(ComputeReply reply, int i, int b, (int FirstShard, int ShardCount) asked, ShardPlan plan,
        long step, SharedSlots? shared, bool pooled)
    {
        if (reply.ProtocolVersion != Protocol.Version || reply.Step != step || i >= reply.Blocks.Count) return BlockVerdict.Invalid;
        var block = reply.Blocks[i];
        if (block.FirstShard != asked.FirstShard || block.ShardCount != asked.ShardCount) return BlockVerdict.Invalid;
        if (block.ClaimedElsewhere)
            return pooled && block.GradientSum.IsEmpty && !block.GradientInSharedMemory ? BlockVerdict.Elsewhere : BlockVerdict.Invalid;
        if (!Gradient(block, b, asked, step, shared, out var gradient)) return BlockVerdict.Invalid;
        if (block.ShardLoss.Count != asked.ShardCount || block.ShardCorrect.Count != asked.ShardCount ||
            block.ShardSamples.Count != asked.ShardCount) return BlockVerdict.Invalid;
        bool finite = true;
        for (int k = 0; k < asked.ShardCount; k++)
        {
            int samples = plan.Shard(asked.FirstShard + k).Length;
            if (block.ShardSamples[k] != samples || block.ShardCorrect[k] < 0 || block.ShardCorrect[k] > samples)
                return BlockVerdict.Invalid;
            finite &= double.IsFinite(block.ShardLoss[k]);
        }
        return finite && Clipping.AllFinite(gradient) ? BlockVerdict.Valid : BlockVerdict.NonFinite;
    }

    /// <summary>
    /// The block's sum: in the reply, or — for a same-host worker — in the slot of step block <paramref name="b"/>,
    /// which must be stamped with this step and block. False when it is missing or has the wrong length.
    /// </summary>
    private bool Gradient(BlockResult block, int b, (int FirstShard, int ShardCount) asked, long step, SharedSlots? shared,
        out ReadOnlySpan<float> gradient)
    {
        gradient = default;
        if (block.GradientInSharedMemory)
            return shared is not null && block.GradientSum.IsEmpty &&
                shared.TryRead(b, step, asked.FirstShard, asked.ShardCount, out gradient);
        return WireArrays.TryReadFloats(block.GradientSum, out gradient) && gradient.Length == _parameterCount;
    }

    private static int IndexOf(IReadOnlyList<int> list, int value)
    {
        for (int i = 0; i < list.Count; i++) if (list[i] == value) return i;
        return -1;
    }

    private static void Keep(BlockResult block, ReadOnlySpan<float> gradient, float[] buffer, GradientResult result)
    {
        gradient.CopyTo(buffer);
        for (int k = 0; k < block.ShardCount; k++)
        {
            int shard = block.FirstShard + k;
            result.ShardLoss[shard] = block.ShardLoss[k];
            result.ShardCorrect[shard] = block.ShardCorrect[k];
            result.ShardSamples[shard] = block.ShardSamples[k];
        }
    }
}
