// Forward-only evaluation of a dataset in fixed chunks on the compute threads; per-chunk sums are added in chunk
// order so the reported loss does not depend on the thread count.
using DistTrain.Core.Data;
using DistTrain.Core.Model;

namespace DistTrain.Core.Training;

public sealed class Evaluator : IDisposable
{
    /// <summary>Rows per chunk; the predictor uses the same so its outputs are the ones scored here, bit for bit.</summary>
    internal const int ChunkRows = 1024;
    private readonly Network _network;
    private readonly ParallelRunner _runner;
    private readonly NetworkWorkspace[] _workspaces;
    private readonly Action<int> _body;
    private Dataset? _data;
    private float[]? _parameters;
    private int[] _indices = [];
    private double[] _loss = [];
    private int[] _correct = [];
    private int _nextChunk, _chunks;

    public Evaluator(Network network, int threads)
    {
        _network = network;
        _runner = new ParallelRunner(threads);
        _workspaces = new NetworkWorkspace[threads];
        _body = RunThread;
    }

    /// <summary>Mean loss and accuracy of <paramref name="parameters"/> on every sample of <paramref name="data"/>.</summary>
    public (double Loss, double Accuracy) Evaluate(float[] parameters, Dataset data)
    {
        if (data.Count == 0) return (double.NaN, double.NaN);
        if (_indices.Length < data.Count)
        {
            _indices = Enumerable.Range(0, data.Count).ToArray();
        }
        _chunks = (data.Count + ChunkRows - 1) / ChunkRows;
        if (_loss.Length < _chunks)
        {
            _loss = new double[_chunks];
            _correct = new int[_chunks];
        }
        _data = data;
        _parameters = parameters;
        _nextChunk = -1;
        _runner.Run(_body);
        double loss = 0;
        long correct = 0;
        for (int c = 0; c < _chunks; c++)
        {
            loss += _loss[c];
            correct += _correct[c];
        }
        return (loss / data.Count, (double)correct / data.Count);
    }

    private void RunThread(int thread)
    {
        var workspace = _workspaces[thread] ??= new NetworkWorkspace(_network, ChunkRows);
        int chunk;
        while ((chunk = Interlocked.Increment(ref _nextChunk)) < _chunks)
        {
            int start = chunk * ChunkRows, rows = Math.Min(ChunkRows, _data!.Count - start);
            _loss[chunk] = workspace.Evaluate(_parameters!, _data, _indices.AsSpan(start, rows), out _correct[chunk]);
        }
    }

    public void Dispose() => _runner.Dispose();
}
