// Forward-only inference on the compute threads: every row's outputs, probabilities and predicted class. Rows run
// in the evaluator's fixed chunks, each written to its own slice, so the results do not depend on the thread
// count and are exactly the outputs the evaluator scores.
using DistTrain.Core.Data;
using DistTrain.Core.Losses;
using DistTrain.Core.Model;

namespace DistTrain.Core.Training;

public sealed class Predictor : IDisposable
{
    private const int ChunkRows = Evaluator.ChunkRows;
    private readonly Network _network;
    private readonly ParallelRunner _runner;
    private readonly NetworkWorkspace[] _workspaces;
    private readonly Action<int> _body;
    private float[] _parameters = [], _features = [];
    private Predictions? _result;
    private int _nextChunk, _chunks;

    public Predictor(Network network, int threads)
    {
        ArgumentNullException.ThrowIfNull(network);
        _network = network;
        _runner = new ParallelRunner(threads);
        _workspaces = new NetworkWorkspace[threads];
        _body = RunThread;
    }

    /// <summary>Predictions for every row of <paramref name="data"/>, whose features are already preprocessed as in training.</summary>
    public Predictions Predict(float[] parameters, Dataset data)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.Width != _network.Inputs)
            throw new UserInputException(
                $"{data.Source}: samples have {data.Width} features but model.inputs is {_network.Inputs}");
        return Predict(parameters, data.Features);
    }

    /// <summary>Predictions for row-major <paramref name="features"/> [rows × network.Inputs].</summary>
    public Predictions Predict(float[] parameters, float[] features)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(features);
        if (parameters.Length != _network.ParameterCount)
            throw new ArgumentException(
                $"{parameters.Length} parameters, the network has {_network.ParameterCount}", nameof(parameters));
        if (features.Length % _network.Inputs != 0)
            throw new ArgumentException(
                $"{features.Length} features is not a whole number of rows of {_network.Inputs}", nameof(features));
        int rows = features.Length / _network.Inputs;
        var result = new Predictions(rows, _network.Outputs);
        if (rows == 0) return result;
        (_parameters, _features, _result) = (parameters, features, result);
        _chunks = (rows + ChunkRows - 1) / ChunkRows;
        _nextChunk = -1;
        try { _runner.Run(_body); }
        finally { (_parameters, _features, _result) = ([], [], null); }
        return result;
    }

    private void RunThread(int thread)
    {
        var workspace = _workspaces[thread] ??= new NetworkWorkspace(_network, ChunkRows);
        var result = _result!;
        int inputs = _network.Inputs, width = _network.Outputs;
        var loss = _network.Loss;
        int chunk;
        while ((chunk = Interlocked.Increment(ref _nextChunk)) < _chunks)
        {
            int start = chunk * ChunkRows, rows = Math.Min(ChunkRows, result.Rows - start);
            var outputs = workspace.Predict(_parameters, _features.AsSpan(start * inputs, rows * inputs), rows);
            var logits = result.Logits.AsSpan(start * width, rows * width);
            outputs.CopyTo(logits);
            Probabilities.Compute(loss.Probabilities, logits, result.Probabilities.AsSpan(start * width, rows * width),
                rows, width);
            for (int r = 0; r < rows; r++) result.Classes[start + r] = loss.PredictedClass(logits.Slice(r * width, width));
        }
    }

    public void Dispose() => _runner.Dispose();
}
