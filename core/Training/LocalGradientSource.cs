// Local mode's gradient source: the batch's shards are cut into aligned blocks that the block engine's threads claim
// one at a time (the engine a worker computes with); the block sums complete the same tree the coordinator uses.
using DistTrain.Core.Data;
using DistTrain.Core.Model;

namespace DistTrain.Core.Training;

public sealed class LocalGradientSource : IGradientSource, IDisposable
{
    private readonly Network _network;
    private readonly Dataset _data;
    private readonly BlockEngine _engine;
    private readonly List<float[]> _blockBuffers = [];
    private readonly List<(int FirstShard, int ShardCount, float[] Sum)> _tiling = [];
    /// <summary>The weights rounded to bfloat16, for the 16-bit wire.</summary>
    private float[] _rounded = [];

    public LocalGradientSource(Network network, Dataset data, int threads, string executorName = "local")
    {
        _network = network;
        _data = data;
        _engine = new BlockEngine(threads);
        ExecutorName = executorName;
    }

    public string ExecutorName { get; }
    public int Threads => _engine.Threads;
    /// <summary>Bytes allocated on the helper threads (the calling thread is measured by the caller).</summary>
    public long HelperThreadAllocatedBytes => _engine.HelperThreadAllocatedBytes;

    public ValueTask ComputeAsync(GradientRequest request, GradientResult result, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var plan = request.Plan;
        int shards = plan.ShardCount;
        result.Reset(shards);
        // One block per thread is enough with one thread; with more, several blocks each balance uneven shards.
        int blockSize = GradientReduction.BlockSizeFor(shards, Threads == 1 ? 1 : 2 * Threads);
        int blockCount = (shards + blockSize - 1) / blockSize;
        // Buffers grow to the largest count seen and are then reused: steady-state steps allocate nothing.
        while (_blockBuffers.Count < blockCount) _blockBuffers.Add(new float[_network.ParameterCount]);
        _tiling.Clear();
        for (int b = 0; b < blockCount; b++)
        {
            int first = b * blockSize;
            _tiling.Add((first, Math.Min(blockSize, shards - first), _blockBuffers[b]));
        }
        var parameters = request.Parameters;
        if (request.RoundToBf16)
        {
            if (_rounded.Length != parameters.Length) _rounded = new float[parameters.Length];
            Kernels.BFloat16.Round(parameters, _rounded);
            parameters = _rounded;
        }
        _engine.Compute(_network, _data, parameters, request.BatchIndices, plan, _tiling,
            result.ShardLoss, result.ShardCorrect, result.ShardSamples, request.Step, request.RoundToBf16);

        // The blocks tile the batch: the same tree as a distributed step's (BlockTree), whoever computed them.
        foreach (var (first, count, _) in _tiling) result.Blocks.Add(new BlockRecord(first, count, ExecutorName));
        var squares = result.TakeSquares(request);
        BlockTree.CompleteInto(_tiling, shards, result.GradientSum, Math.Max(1, request.MeanOf),
            squares.IsEmpty ? default : request.NormSlices, squares);
        result.IsMean = request.MeanOf > 0;
        result.HasSquares = !squares.IsEmpty;
        return ValueTask.CompletedTask;
    }

    public void Dispose() => _engine.Dispose();
}
