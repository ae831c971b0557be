// One step's assignment as a deterministic state machine: the batch's shards are split among workers in proportion
// to their throughput, each worker's contiguous run becomes the fewest aligned blocks, and replies or failures
// drive reassignment. No I/O, no clock: ClusterStateMachine owns one per step attempt; unit tests replay scenarios exactly.
//
// Same-host pool: workers that share the coordinator's memory can share one run of the batch instead of taking a
// share each. Their combined share is cut into small aligned blocks and every member gets the same dispatch; each
// member claims blocks one at a time from a counter in shared memory and answers the rest "claimed elsewhere", so a
// member that runs slower in this step (a busy core, a stall) computes fewer blocks. A pool block is pending while
// any member's dispatch that holds it is open; when the last one closes without it, it is reassigned as usual.
//
// Failure policy: a failed or timed-out request drops its worker for the rest of the step and its blocks go to the
// least-loaded survivors. A malformed block (wrong length, wrong shard range) is rejected and recomputed by a worker
// that has not tried it. A non-finite block is recomputed once elsewhere; if that is non-finite too — or no other
// worker is left — it is accepted as genuine, and TrainingStep's non-finite policy (skip or stop) takes over.
using DistTrain.Core.Training;
using DistTrain.Protos;

namespace DistTrain.Coordinator.Control;

public enum BlockVerdict { Valid, NonFinite, Invalid, Elsewhere }

/// <summary>
/// A request to send: worker <see cref="Worker"/> computes blocks <see cref="Blocks"/> (indices into Blocks), or, when
/// <see cref="Pooled"/>, those of them it claims from the step's pool (the same list goes to every pool member).
/// </summary>
public sealed record Dispatch(int Id, string Worker, IReadOnlyList<int> Blocks, bool Pooled = false);

/// <summary>What a reply or failure changed: blocks whose results to keep, and requests to send next.</summary>
public sealed record StepProgress(IReadOnlyList<int> Accepted, IReadOnlyList<Dispatch> Next);

public sealed class StepAssignment
{
    private enum BlockState { Pending, InFlight, Done }

    private sealed class Block(int first, int count)
    {
        public int First { get; } = first;
        public int Count { get; } = count;
        public BlockState State { get; set; }
        public string? Executor { get; set; }
        public HashSet<string> Tried { get; } = [];
        public bool SawNonFinite { get; set; }
        /// <summary>Open dispatches holding the block (more than one only for a pool block).</summary>
        public int Open { get; set; }
    }

    /// <summary>Pool blocks per pool member: small enough to even out speed differences within a step.</summary>
    public const int PoolBlocksPerMember = 2;

    private readonly List<Block> _blocks = [];
    private readonly List<string> _workers;
    private readonly Dictionary<string, double> _throughput;
    private readonly Dictionary<string, int> _inFlightShards = [];
    private readonly HashSet<string> _dropped = [];
    private readonly Dictionary<int, Dispatch> _open = [];
    private readonly List<Dispatch> _initial = [];
    private readonly int _maxBlocksPerDispatch;
    private int _nextDispatch, _done;

    /// <param name="pool">Workers that can claim blocks from one shared pool (same-host workers); a pool forms when at
    /// least two of them take part.</param>
    public StepAssignment(int totalShards, IReadOnlyList<(string Id, double Throughput)> workers,
        IReadOnlyCollection<string>? pool = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(totalShards, 1);
        if (workers.Count == 0) throw new ArgumentException("at least one worker is needed", nameof(workers));
        TotalShards = totalShards;
        _workers = workers.Select(w => w.Id).ToList();
        _throughput = workers.ToDictionary(w => w.Id, w => w.Throughput > 0 && double.IsFinite(w.Throughput) ? w.Throughput : 1);
        _maxBlocksPerDispatch = MessageLimits.MaxBlocksPerRequest(totalShards);
        var counts = Split(totalShards, _workers.Select(w => _throughput[w]).ToList());
        var members = pool is null ? [] : _workers.Where(pool.Contains).ToList();
        if (members.Count < 2) members = [];
        int start = 0;
        for (int w = 0; w < _workers.Count; w++)
        {
            if (members.Contains(_workers[w]))
            {
                if (HasPool) continue;
                // The members' shares become one contiguous run at the first member's place.
                int shards = members.Sum(m => counts[_workers.IndexOf(m)]);
                var poolBlocks = PoolBlocks(start, start + shards, members.Count);
                start += shards;
                foreach (var member in members) _initial.Add(Send(member, poolBlocks, pooled: true));
                HasPool = true;
                continue;
            }
            if (counts[w] == 0) continue;
            var indices = new List<int>();
            foreach (var (first, count) in BlockTree.Decompose(start, start + counts[w], totalShards))
            {
                indices.Add(_blocks.Count);
                _blocks.Add(new Block(first, count));
            }
            start += counts[w];
            _initial.AddRange(SendChunked(_workers[w], indices));
        }
    }

    public int TotalShards { get; }
    /// <summary>Whether the first dispatches include a pool (the caller must open one before sending them).</summary>
    public bool HasPool { get; }
    public int BlockCount => _blocks.Count;
    public bool IsComplete => _done == _blocks.Count;
    /// <summary>Why the step cannot complete (a block no live worker can compute), or null.</summary>
    public string? FailureReason { get; private set; }
    /// <summary>Decisions worth logging (rejections, reassignments, accepted non-finite blocks), in order.</summary>
    public List<string> Notes { get; } = [];

    public (int FirstShard, int ShardCount) BlockRange(int block) => (_blocks[block].First, _blocks[block].Count);
    public string? ExecutorOf(int block) => _blocks[block].Executor;

    /// <summary>The first requests, one per worker with a share of the batch.</summary>
    public IReadOnlyList<Dispatch> Start() => _initial;

    /// <summary>Applies a reply's per-block verdicts (aligned with the dispatch's blocks).</summary>
    public StepProgress OnReply(int dispatchId, IReadOnlyList<BlockVerdict> verdicts)
    {
        var dispatch = Close(dispatchId);
        if (verdicts.Count != dispatch.Blocks.Count)
            throw new ArgumentException($"{verdicts.Count} verdicts for {dispatch.Blocks.Count} blocks", nameof(verdicts));
        var accepted = new List<int>();
        var retry = new List<int>();
        for (int i = 0; i < verdicts.Count; i++)
        {
            int b = dispatch.Blocks[i];
            var block = _blocks[b];
            if (verdicts[i] == BlockVerdict.Elsewhere && !dispatch.Pooled)
                throw new ArgumentException($"block {Describe(block)} answered as claimed elsewhere outside a pool", nameof(verdicts));
            if (verdicts[i] == BlockVerdict.Elsewhere)
            {
                // Another member claimed it: its answer is still to come, or came; nobody left to give it: recompute.
                if (block.State == BlockState.Done || block.Open > 0) continue;
                Notes.Add($"block {Describe(block)} of the pool was claimed by no member that answered; recomputing");
                retry.Add(b);
                continue;
            }
            if (dispatch.Pooled) block.Tried.Add(dispatch.Worker);
            if (block.State == BlockState.Done)
            {
                // Two members computed one pool block: only a broken claim counter does that; the first result stands.
                Notes.Add($"block {Describe(block)} came from {dispatch.Worker} as well as {block.Executor}; the second ignored");
                continue;
            }
            bool keep = verdicts[i] switch
            {
                BlockVerdict.Valid => true,
                // A second non-finite result, or nobody else to ask: the gradient really is non-finite.
                BlockVerdict.NonFinite => block.SawNonFinite || !HasCandidate(block, dispatch.Worker),
                _ => false,
            };
            if (verdicts[i] == BlockVerdict.NonFinite)
            {
                Notes.Add(keep
                    ? $"block {Describe(block)} is non-finite from {dispatch.Worker}{(block.SawNonFinite ? " as well" : "")}; accepted as genuine"
                    : $"block {Describe(block)} from {dispatch.Worker} is non-finite; rejected, recomputing elsewhere");
                block.SawNonFinite = true;
            }
            else if (verdicts[i] == BlockVerdict.Invalid)
                Notes.Add($"block {Describe(block)} from {dispatch.Worker} is malformed; rejected, recomputing elsewhere");
            if (keep)
            {
                block.State = BlockState.Done;
                block.Executor = dispatch.Worker;
                _done++;
                accepted.Add(b);
            }
            else retry.Add(b);
        }
        return new StepProgress(accepted, Reassign(retry));
    }

    /// <summary>The request failed (error, deadline, dropped connection): its worker sits out the rest of the step.</summary>
    public StepProgress OnFailure(int dispatchId)
    {
        var dispatch = Close(dispatchId);
        _dropped.Add(dispatch.Worker);
        // Other open requests of the same worker will fail or be ignored; their blocks stay theirs until they answer.
        // A pool block another member still holds waits for that member's answer (it may have claimed it).
        return new StepProgress([], Reassign(dispatch.Blocks.Where(b => _blocks[b].State != BlockState.Done && _blocks[b].Open == 0).ToList()));
    }

    /// <summary>The worker takes no more blocks in this step (it was refused); its open requests are failed by the caller.</summary>
    public void Exclude(string worker) => _dropped.Add(worker);

    /// <summary>
    /// Shard counts per worker proportional to weight (largest remainder, ties to the earlier worker), at least one
    /// each when there are as many shards as workers.
    /// </summary>
    public static int[] Split(int shards, IReadOnlyList<double> weights)
    {
        double total = weights.Sum();
        var counts = new int[weights.Count];
        var remainders = new (double Remainder, int Worker)[weights.Count];
        int given = 0;
        for (int w = 0; w < weights.Count; w++)
        {
            double exact = shards * weights[w] / total;
            counts[w] = (int)Math.Floor(exact);
            given += counts[w];
            remainders[w] = (exact - counts[w], w);
        }
        foreach (var (_, w) in remainders.OrderByDescending(r => r.Remainder).ThenBy(r => r.Worker).Take(shards - given))
            counts[w]++;
        // Every worker computes something when there are shards enough: a worker measured slow once (a stall, a
        // cold start) would otherwise get nothing, never be measured again, and sit idle for the rest of the run.
        if (shards >= weights.Count)
            for (int w = 0; w < counts.Length; w++)
                if (counts[w] == 0) { counts[Array.IndexOf(counts, counts.Max())]--; counts[w] = 1; }
        return counts;
    }

    private Dispatch Close(int dispatchId)
    {
        if (!_open.Remove(dispatchId, out var dispatch))
            throw new InvalidOperationException($"dispatch {dispatchId} is not open");
        foreach (int b in dispatch.Blocks)
        {
            _inFlightShards[dispatch.Worker] -= _blocks[b].Count;
            _blocks[b].Open--;
        }
        return dispatch;
    }

    /// <summary>
    /// Cuts shards [start, end) into aligned blocks of one power-of-two size giving about PoolBlocksPerMember blocks
    /// per member (at most one per shard, so a request can always name them all: their sums go to shared memory, not
    /// into the reply), largest first for the claim order.
    /// </summary>
    private List<int> PoolBlocks(int start, int end, int members)
    {
        int size = GradientReduction.BlockSizeFor(end - start, PoolBlocksPerMember * members);
        var indices = new List<int>();
        var pieces = new List<(int First, int Count)>();
        foreach (var (first, count) in BlockTree.Decompose(start, end, TotalShards))
            for (int at = first; at < first + count; at += size)
                pieces.Add((at, Math.Min(size, first + count - at)));
        foreach (var (first, count) in pieces.OrderByDescending(p => p.Count).ThenBy(p => p.First))
        {
            indices.Add(_blocks.Count);
            _blocks.Add(new Block(first, count));
        }
        return indices;
    }

    private List<Dispatch> Reassign(List<int> blocks)
    {
        var byWorker = new Dictionary<string, List<int>>();
        foreach (int b in blocks)
        {
            var block = _blocks[b];
            block.State = BlockState.Pending;
            var target = _workers.Where(w => Eligible(block, w))
                .OrderBy(w => (_inFlightShards.GetValueOrDefault(w) + block.Count) / _throughput[w])
                .ThenBy(w => _workers.IndexOf(w))
                .FirstOrDefault();
            if (target is null)
            {
                FailureReason ??= $"no live worker is left to compute block {Describe(block)} (tried {string.Join(", ", block.Tried.Order())})";
                continue;
            }
            Notes.Add($"block {Describe(block)} reassigned to {target}");
            // Count it now so the next block of this batch sees the load.
            _inFlightShards[target] = _inFlightShards.GetValueOrDefault(target) + block.Count;
            (byWorker.TryGetValue(target, out var list) ? list : byWorker[target] = []).Add(b);
        }
        var next = new List<Dispatch>();
        foreach (var (worker, list) in byWorker.OrderBy(p => _workers.IndexOf(p.Key)))
        {
            _inFlightShards[worker] -= list.Sum(b => _blocks[b].Count);
            next.AddRange(SendChunked(worker, list));
        }
        return next;
    }

    /// <summary>Blocks for one worker alone, in as many requests as the message limits need.</summary>
    private IEnumerable<Dispatch> SendChunked(string worker, List<int> blocks) =>
        blocks.Chunk(_maxBlocksPerDispatch).Select(chunk => Send(worker, chunk, pooled: false)).ToList();

    private Dispatch Send(string worker, IReadOnlyList<int> blocks, bool pooled)
    {
        var dispatch = new Dispatch(_nextDispatch++, worker, blocks, pooled);
        foreach (int b in blocks)
        {
            _blocks[b].State = BlockState.InFlight;
            _blocks[b].Open++;
            // A pool member has tried only the blocks it answers for (OnReply).
            if (!pooled) _blocks[b].Tried.Add(worker);
        }
        _inFlightShards[worker] = _inFlightShards.GetValueOrDefault(worker) + blocks.Sum(b => _blocks[b].Count);
        _open[dispatch.Id] = dispatch;
        return dispatch;
    }

    private bool Eligible(Block block, string worker) => !_dropped.Contains(worker) && !block.Tried.Contains(worker);
    private bool HasCandidate(Block block, string except) => _workers.Any(w => w != except && Eligible(block, w));
    private static string Describe(Block b) => $"[{b.First}, {b.First + b.Count})";
}
