// Local mode's gradient source: the batch's shards are cut into aligned blocks that in-process threads claim one
// at a time; each block is reduced on its thread and the block sums complete the same tree the coordinator uses.
using DistTrain.Core.Data;
using DistTrain.Core.Model;

namespace DistTrain.Core.Training;

public sealed class LocalGradientSource : IGradientSource, IDisposable
{
    private readonly Network _network;
    private readonly Dataset _data;
    private readonly ParallelRunner _runner;
    private readonly ShardBlockComputer?[] _computers;
    private readonly List<float[]> _blockBuffers = [];
    private readonly Action<int> _body;
    private int _maxShardRows;

    // The step being computed (fields, so the per-thread body is one cached delegate).
    private GradientRequest? _request;
    private GradientResult? _result;
    private int _blockSize, _blockCount, _nextBlock;
    private readonly List<(int FirstShard, int ShardCount, float[] Sum)> _tiling = [];

    public LocalGradientSource(Network network, Dataset data, int threads, string executorName = "local")
    {
        _network = network;
        _data = data;
        _runner = new ParallelRunner(threads);
        _computers = new ShardBlockComputer?[threads];
        _body = RunThread;
        ExecutorName = executorName;
    }

    public string ExecutorName { get; }
    public int Threads => _runner.ThreadCount;
    /// <summary>Bytes allocated on the helper threads (the calling thread is measured by the caller).</summary>
    public long HelperThreadAllocatedBytes => _runner.PoolAllocatedBytes;

    public ValueTask ComputeAsync(GradientRequest request, GradientResult result, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var plan = request.Plan;
        int shards = plan.ShardCount;
        result.Reset(shards);
        // One block per thread is enough with one thread; with more, several blocks each balance uneven shards.
        _blockSize = GradientReduction.BlockSizeFor(shards, Threads == 1 ? 1 : 2 * Threads);
        _blockCount = (shards + _blockSize - 1) / _blockSize;
        EnsureCapacity(Math.Min(plan.ShardSize, plan.BatchSize), _blockSize, _blockCount);
        _request = request;
        _result = result;
        _nextBlock = -1;
        _runner.Run(_body);
        _request = null;
        _result = null;

        // The blocks tile the batch: the same tree as a distributed step's (BlockTree), whoever computed them.
        _tiling.Clear();
        for (int b = 0; b < _blockCount; b++)
        {
            int first = b * _blockSize, count = Math.Min(_blockSize, shards - first);
            _tiling.Add((first, count, _blockBuffers[b]));
            result.Blocks.Add(new BlockRecord(first, count, ExecutorName));
        }
        BlockTree.Complete(_tiling, shards, _network.ParameterCount).AsSpan(0, _network.ParameterCount).CopyTo(result.GradientSum);
        return ValueTask.CompletedTask;
    }

    private void RunThread(int thread)
    {
        var request = _request!;
        var result = _result!;
        var computer = _computers[thread]!;
        int shards = request.Plan.ShardCount;
        int block;
        while ((block = Interlocked.Increment(ref _nextBlock)) < _blockCount)
        {
            int first = block * _blockSize;
            computer.ComputeBlock(request.Parameters, _data, request.BatchIndices, request.Plan, first,
                Math.Min(_blockSize, shards - first), _blockBuffers[block],
                result.ShardLoss, result.ShardCorrect, result.ShardSamples, request.Step, request.RoundToBf16);
        }
    }

    // Buffers grow to the largest shape seen and are then reused: steady-state steps allocate nothing.
    private void EnsureCapacity(int shardRows, int blockSize, int blockCount)
    {
        for (int t = 0; t < _computers.Length; t++)
            if (_computers[t] is not { } c || c.Workspace.MaxRows < shardRows || c.MaxShardsPerBlock < blockSize)
                _computers[t] = new ShardBlockComputer(_network, Math.Max(shardRows, _maxShardRows),
                    Math.Max(blockSize, _computers[t]?.MaxShardsPerBlock ?? 1));
        _maxShardRows = Math.Max(_maxShardRows, shardRows);
        while (_blockBuffers.Count < blockCount) _blockBuffers.Add(new float[_network.ParameterCount]);
    }

    public void Dispose() => _runner.Dispose();
}
