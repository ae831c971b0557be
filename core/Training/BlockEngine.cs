// The block compute of local mode and of a worker alike: aligned pieces of a batch (runs of shards, each with the
// buffer that receives its pairwise-tree sum) claimed one at a time by the engine's threads, so a thread that runs
// slower takes fewer; each thread computes with its own ShardBlockComputer, sized for the largest shard and piece seen
// and then reused, so steady-state steps allocate nothing. How a batch is cut into pieces, and what happens to their
// sums, is the caller's: local mode completes the tree over them, a worker replies with them.
using DistTrain.Core.Data;
using DistTrain.Core.Model;

namespace DistTrain.Core.Training;

public sealed class BlockEngine : IDisposable
{
    private readonly ParallelRunner _runner;
    private readonly ShardBlockComputer?[] _computers;
    private readonly Action<int> _body;
    private Network? _network;

    // The call in progress (fields, so the per-thread body is one cached delegate).
    private IReadOnlyList<(int FirstShard, int ShardCount, float[] Sum)> _pieces = [];
    private float[] _parameters = [];
    private Dataset? _data;
    private ArraySegment<int> _batch;
    private ShardPlan _plan;
    private double[] _loss = [];
    private int[] _correct = [], _samples = [];
    private long _step;
    private bool _roundLeaves;
    private int _next;

    public BlockEngine(int threads)
    {
        _runner = new ParallelRunner(threads);
        _computers = new ShardBlockComputer?[threads];
        _body = RunThread;
    }

    public int Threads => _runner.ThreadCount;
    /// <summary>Bytes allocated on the helper threads (the calling thread is measured by the caller).</summary>
    public long HelperThreadAllocatedBytes => _runner.PoolAllocatedBytes;

    /// <summary>Binds helper thread i to <paramref name="cpus"/>(i) at its next body (ParallelRunner.BindPoolThreads).</summary>
    public void BindPoolThreads(Func<int, IReadOnlyList<int>> cpus, Action<string>? report = null) => _runner.BindPoolThreads(cpus, report);

    /// <summary>Runs an empty body on every thread (helper threads apply a new binding now).</summary>
    public void Touch() => _runner.Run(_ => { });

    /// <summary>
    /// Computes every piece of <paramref name="plan"/> (aligned, disjoint) into its buffer and fills the per-shard
    /// statistics of the shards they cover. <paramref name="batch"/> holds the sample index of every batch position the
    /// pieces cover. The calling thread is thread 0. Not reentrant: callers serialize their steps.
    /// </summary>
    public void Compute(Network network, Dataset data, float[] parameters, ArraySegment<int> batch, ShardPlan plan,
        IReadOnlyList<(int FirstShard, int ShardCount, float[] Sum)> pieces, double[] shardLoss, int[] shardCorrect,
        int[] shardSamples, long step, bool roundLeaves)
    {
        int maxPiece = 1;
        for (int p = 0; p < pieces.Count; p++) maxPiece = Math.Max(maxPiece, pieces[p].ShardCount); // no boxed enumerator
        EnsureComputers(network, Math.Min(plan.ShardSize, plan.BatchSize), maxPiece);
        (_pieces, _parameters, _data, _batch, _plan) = (pieces, parameters, data, batch, plan);
        (_loss, _correct, _samples, _step, _roundLeaves) = (shardLoss, shardCorrect, shardSamples, step, roundLeaves);
        _next = -1;
        try { _runner.Run(_body); }
        finally { (_pieces, _parameters, _data, _batch) = ([], [], null, default); }
    }

    private void RunThread(int thread)
    {
        var computer = _computers[thread]!;
        int piece;
        while ((piece = Interlocked.Increment(ref _next)) < _pieces.Count)
        {
            var (first, count, sum) = _pieces[piece];
            computer.ComputeBlock(_parameters, _data!, _batch, _plan, first, count, sum, _loss, _correct, _samples, _step, _roundLeaves);
        }
    }

    // Workspaces grow to the largest shard and piece seen and are then reused (a new network starts afresh).
    private void EnsureComputers(Network network, int shardRows, int maxPiece)
    {
        if (!ReferenceEquals(network, _network)) Array.Clear(_computers);
        _network = network;
        for (int t = 0; t < _computers.Length; t++)
            if (_computers[t] is not { } c || c.Workspace.MaxRows < shardRows || c.MaxShardsPerBlock < maxPiece)
                _computers[t] = new ShardBlockComputer(network, Math.Max(shardRows, _computers[t]?.Workspace.MaxRows ?? 1),
                    Math.Max(maxPiece, _computers[t]?.MaxShardsPerBlock ?? 1));
    }

    public void Dispose() => _runner.Dispose();
}
