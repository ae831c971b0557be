// Computes the blocks of one request on all of the worker's threads, with the block engine local mode uses: each
// block is cut into aligned pieces (so a single large block still uses every core), threads claim pieces, and each
// block's pieces are joined along the pairwise tree. The result is the block's subtree sum, bit-identical to
// computing it on one thread.
using System.Numerics;
using DistTrain.Core.Data;
using DistTrain.Core.Model;
using DistTrain.Core.Training;
using DistTrain.Protos;

namespace DistTrain.Worker;

/// <summary>Fills the engine's parameter array with the request's weights.</summary>
public delegate void WeightsLoader(Span<float> destination);

public sealed class BlockComputeEngine : IDisposable
{
    // The engine local mode computes with too: the claim loop and the per-thread workspaces.
    private readonly BlockEngine _blocks;
    private float[] _parameters = [];
    private readonly List<(int First, int Count, float[] Sum)> _pieces = [];
    private readonly List<float[]> _pieceBuffers = [];
    private (int Start, int Count)[] _pieceRanges = [];

    // One long-lived thread drives every request: the GEMM's per-thread pack buffers and the workspaces stay warm,
    // where a fresh thread per request would allocate and first-touch them again each step.
    private readonly System.Collections.Concurrent.BlockingCollection<Action> _queue = [];
    private readonly Thread _driver;

    public BlockComputeEngine(int threads)
    {
        _blocks = new BlockEngine(threads);
        _driver = new Thread(() =>
        {
            foreach (var work in _queue.GetConsumingEnumerable()) work();
        }) { IsBackground = true, Name = "disttrain-worker-compute" };
        _driver.Start();
    }

    /// <summary>Runs <paramref name="work"/> on the engine's compute thread (the server's I/O threads never block).</summary>
    public Task<T> RunOnComputeThread<T>(Func<T> work)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        _queue.Add(() =>
        {
            try { done.SetResult(work()); }
            catch (Exception e) { done.SetException(e); }
        });
        return done.Task;
    }

    public int Threads => _blocks.Threads;

    private readonly object _bindLock = new();
    private IReadOnlyList<int>? _threadZeroCpus;
    private long _bindVersion;
    [ThreadStatic] private static long t_boundVersion;

    /// <summary>
    /// Binds the calling thread as compute thread 0 is bound (a step link's thread computes in its place); cheap when
    /// the binding has not changed since this thread last applied it.
    /// </summary>
    public void BindCallerLikeComputeThread()
    {
        IReadOnlyList<int>? cpus;
        long version;
        lock (_bindLock) (cpus, version) = (_threadZeroCpus, _bindVersion);
        if (cpus is null || t_boundVersion == version) return;
        CpuAffinity.TryBindCurrentThread(cpus, out _);
        t_boundVersion = version;
    }

    /// <summary>
    /// Binds compute thread i to CPU <paramref name="cpus"/>[i mod n], or, when <paramref name="cpus"/> is empty,
    /// lets every compute thread use all of the process's CPUs again. Returns where the threads run, for the log, or
    /// why binding failed (they then stay where they were).
    /// </summary>
    public async Task<string> BindAsync(IReadOnlyList<int> cpus)
    {
        IReadOnlyList<int> For(int thread) => cpus.Count == 0 ? CpuAffinity.ProcessCpus : [cpus[thread % cpus.Count]];
        lock (_bindLock)
        {
            _threadZeroCpus = For(0);
            _bindVersion++;
        }
        var errors = new System.Collections.Concurrent.ConcurrentQueue<string>();
        _blocks.BindPoolThreads(For, errors.Enqueue);
        await RunOnComputeThread(() =>
        {
            if (!CpuAffinity.TryBindCurrentThread(For(0), out string error)) errors.Enqueue(error);
            // The pool threads bind at their next body: run an empty one so that their failures are known now.
            _blocks.Touch();
            return true;
        });
        if (errors.TryPeek(out string? first)) return $"not bound: {first}";
        return cpus.Count == 0 ? "not bound"
            : $"bound to CPU {string.Join(",", Enumerable.Range(0, Threads).Select(t => For(t)[0]).Distinct())}";
    }

    /// <summary>
    /// Computes <paramref name="blocks"/> (aligned, disjoint) of <paramref name="plan"/>; <paramref name="batch"/>
    /// holds the sample index of every batch position those blocks cover. Returns one sum per block and fills the
    /// per-shard statistics (indexed by shard). <paramref name="loadWeights"/> null: the weights of the previous call
    /// (blocks of one request computed one call at a time). Not reentrant: callers serialize requests.
    /// </summary>
    public float[][] Compute(Network network, Dataset data, WeightsLoader? loadWeights, int[] batch, ShardPlan plan,
        IReadOnlyList<(int First, int Count)> blocks, double[] shardLoss, int[] shardCorrect, int[] shardSamples,
        bool reuseBuffers, long step, bool roundLeaves = false, bool keepShards = false)
    {
        int requested = blocks.Sum(b => b.Count);
        // One thread: whole blocks (fewest buffers). More: pieces small enough for about two per thread. Shards kept
        // apart (the 16-bit wire sends each one): one shard per piece.
        int pieceSize = keepShards ? 1 : Threads == 1 ? int.MaxValue : GradientReduction.BlockSizeFor(requested, 2 * Threads);
        _pieces.Clear();
        var pieceRanges = new (int Start, int Count)[blocks.Count];
        foreach (var (i, block) in blocks.Index())
        {
            int size = (int)Math.Min(pieceSize, BitOperations.RoundUpToPowerOf2((uint)block.Count));
            pieceRanges[i] = (_pieces.Count, 0);
            for (int first = block.First; first < block.First + block.Count; first += size)
            {
                int count = Math.Min(size, block.First + block.Count - first);
                // Sums that go out in a gRPC reply need buffers of their own: the reply is serialized after this
                // method returns, when the next request may already be computing; they are rented from the wire's
                // pool, which gets them back once the reply is written. Sums the caller copies out before the next
                // request (into shared memory) use the engine's own buffers.
                _pieces.Add((first, count, reuseBuffers ? PieceBuffer(_pieces.Count, network.ParameterCount) : WireBuffers.Rent(network.ParameterCount)));
            }
            pieceRanges[i].Count = _pieces.Count - pieceRanges[i].Start;
        }
        // The weights arrive inside a received message or a shared file; the GEMM reads them many times per shard,
        // so they are copied once into a float array of the engine's (400 KB for the lecture model).
        if (loadWeights is not null)
        {
            if (_parameters.Length != network.ParameterCount) _parameters = new float[network.ParameterCount];
            loadWeights(_parameters);
        }
        else if (_parameters.Length != network.ParameterCount)
            throw new InvalidOperationException("no weights were loaded for this network");
        _blocks.Compute(network, data, _parameters, batch, plan, _pieces, shardLoss, shardCorrect, shardSamples, step, roundLeaves);

        var sums = new float[blocks.Count][];
        _pieceRanges = pieceRanges;
        for (int i = 0; i < blocks.Count && !keepShards; i++)
        {
            var (start, count) = pieceRanges[i];
            sums[i] = count == 1
                ? _pieces[start].Sum
                : BlockTree.Complete(_pieces.GetRange(start, count), plan.ShardCount, network.ParameterCount);
            // The tree summed into the block's first piece; the others' rented arrays are free again.
            for (int p = start + 1; !reuseBuffers && p < start + count; p++) WireBuffers.Return(_pieces[p].Sum);
        }
        return sums;
    }

    /// <summary>After a Compute with keepShards: the sums of block <paramref name="block"/>'s shards, in shard order.</summary>
    public IReadOnlyList<float[]> ShardSums(int block)
    {
        var (start, count) = _pieceRanges[block];
        var sums = new float[count][];
        for (int k = 0; k < count; k++) sums[k] = _pieces[start + k].Sum;
        return sums;
    }

    private float[] PieceBuffer(int index, int length)
    {
        while (_pieceBuffers.Count <= index) _pieceBuffers.Add(new float[length]);
        if (_pieceBuffers[index].Length != length) _pieceBuffers[index] = new float[length];
        return _pieceBuffers[index];
    }

    public void Dispose()
    {
        _queue.CompleteAdding();
        _driver.Join();
        _queue.Dispose();
        _blocks.Dispose();
    }
}
