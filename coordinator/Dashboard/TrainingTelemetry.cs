// The dashboard's picture of the run: the training thread records each step here (a few numbers under a short
// lock), and the web side takes consistent snapshots of it; nothing here touches the network or allocates per step.
using System.Diagnostics;
using DistTrain.Core.Training;

namespace DistTrain.Coordinator.Dashboard;

public sealed class TrainingTelemetry
{
    public static readonly string[] StepColumns = ["loss", "accuracy", "samplesPerSecond", "gradNorm", "learningRate"];
    public static readonly string[] EpochColumns = ["trainLoss", "trainAccuracy", "testLoss", "testAccuracy", "samplesPerSecond", "gradNorm"];
    public const string LayerColumnPrefix = "grad:";
    private const int KeptMessages = 20;

    private readonly object _gate = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly string[] _layers;
    private readonly DownsampledSeries _steps, _epochs;
    private readonly GradientMonitor _gradients;
    private readonly double[] _row, _epochRow, _layerNorms;
    private readonly Queue<string> _messages = new();

    private string _model = "";
    private bool _started, _finished;
    private string? _endState, _endReason;
    private double _startedAt, _lastStepAt = double.NaN;
    private long _startStep, _totalSteps, _step, _samples, _skipped, _clips, _shardsDone, _version;
    private readonly int _epochsTotal;
    private int _epoch, _batch, _batchesPerEpoch;
    private double _loss = double.NaN, _accuracy = double.NaN, _gradNorm = double.NaN, _rate = double.NaN;
    private double _learningRate = double.NaN, _lastLatency = double.NaN;
    private EpochMetrics? _lastEpoch;

    public TrainingTelemetry(IReadOnlyList<string> layers, int epochs, DashboardOptions options)
    {
        _layers = [.. layers];
        _epochs = new DownsampledSeries(EpochColumns, options.HistoryPoints);
        _steps = new DownsampledSeries([.. StepColumns, .. _layers.Select(l => LayerColumnPrefix + l)], options.HistoryPoints);
        _gradients = new GradientMonitor(_layers, options.VanishingBelow, options.ExplodingAbove);
        _row = new double[_steps.Columns.Count];
        _epochRow = new double[EpochColumns.Length];
        _layerNorms = new double[_layers.Length];
        _layerNorms.AsSpan().Fill(double.NaN);
        _epochsTotal = epochs;
    }

    /// <summary>Seconds on the telemetry's monotonic clock (the one heartbeat ages are measured on).</summary>
    public double Now => _clock.Elapsed.TotalSeconds;

    public void Start(string model, long startStep, long totalSteps)
    {
        lock (_gate)
        {
            (_model, _startStep, _step, _totalSteps) = (model, startStep, startStep, totalSteps);
            _started = true;
            _startedAt = Now;
            _version++;
        }
    }

    /// <summary>Called on the training thread for every step: copy numbers, never block on I/O.</summary>
    public void RecordStep(in StepReport report)
    {
        var o = report.Outcome;
        double loss = o.Samples > 0 ? o.LossSum / o.Samples : double.NaN;
        double accuracy = o.Samples > 0 ? (double)o.Correct / o.Samples : double.NaN;
        double rate = report.Seconds > 0 ? o.Samples / report.Seconds : double.NaN;
        int shards = 0;
        for (int i = 0; i < report.Blocks.Count; i++) shards += report.Blocks[i].ShardCount;
        lock (_gate)
        {
            _step = o.Step + 1;
            (_epoch, _batch, _batchesPerEpoch) = (report.Epoch, report.Batch, report.BatchesPerEpoch);
            (_loss, _accuracy, _gradNorm, _learningRate) = (loss, accuracy, o.GradientNorm, o.LearningRate);
            // A moving average: single tiny steps are too noisy to read as a rate.
            if (double.IsFinite(rate)) _rate = double.IsFinite(_rate) ? 0.9 * _rate + 0.1 * rate : rate;
            _lastLatency = report.Seconds;
            _lastStepAt = Now;
            _samples += o.Samples;
            _shardsDone += shards;
            if (o.Skipped) _skipped++;
            if (o.Clipped) _clips++;
            o.LayerNorms.AsSpan(0, _layerNorms.Length).CopyTo(_layerNorms);
            (_row[0], _row[1], _row[2], _row[3], _row[4]) = (loss, accuracy, rate, o.GradientNorm, o.LearningRate);
            _layerNorms.CopyTo(_row.AsSpan(StepColumns.Length));
            _steps.Add(_step, _row);
            _gradients.Check(o.Step, _layerNorms, o.Skipped);
            _version++;
        }
    }

    public void RecordEpoch(EpochMetrics m)
    {
        lock (_gate)
        {
            _lastEpoch = m;
            (_epochRow[0], _epochRow[1], _epochRow[2], _epochRow[3], _epochRow[4], _epochRow[5]) =
                (m.TrainLoss, m.TrainAccuracy, m.TestLoss, m.TestAccuracy, m.SamplesPerSecond, m.GradNorm);
            _epochs.Add(m.Step, _epochRow);
            // The trainer's counts include steps before a resume.
            _skipped = Math.Max(_skipped, m.SkippedSteps);
            _clips = Math.Max(_clips, m.ClipEvents);
            _finished = m.Epoch >= m.Epochs;
            _version++;
        }
    }

    public void RecordMessage(string message)
    {
        lock (_gate)
        {
            if (_messages.Count == KeptMessages) _messages.Dequeue();
            _messages.Enqueue(message);
            _version++;
        }
    }

    /// <summary>
    /// The run is over: <paramref name="state"/> is finished, failed or interrupted, <paramref name="reason"/> says
    /// why for the last two. Pages stop listening when they see it.
    /// </summary>
    public void End(string state, string? reason)
    {
        lock (_gate)
        {
            (_endState, _endReason) = (state, reason);
            _version++;
        }
    }

    public bool Ended
    {
        get { lock (_gate) return _endState is not null; }
    }

    /// <summary>Changes whenever anything is recorded; the publisher compares it to skip idle pushes.</summary>
    public long Version => Volatile.Read(ref _version);

    public TelemetrySnapshot Snapshot()
    {
        lock (_gate)
        {
            double now = Now, elapsed = _started ? now - _startedAt : 0;
            long done = _step - _startStep;
            double eta = done > 0 && elapsed > 0 ? (_totalSteps - _step) * elapsed / done : double.NaN;
            return new TelemetrySnapshot(
                // "finished" only once the command says so (End): after the last epoch it still saves the weights, and a
                // page that saw "finished" early would stop listening before the final state.
                _endState ?? (!_started ? "starting" : _finished ? "finishing" : "running"), _endReason, _model,
                _step, _startStep, _totalSteps, _started ? _epoch + 1 : 0, _epochsTotal, _batch + 1, _batchesPerEpoch,
                elapsed, _finished || _endState is not null ? 0 : eta, _loss, _accuracy, _rate, _gradNorm, _learningRate, _lastLatency,
                _samples, _skipped, _clips, _layers, [.. _layerNorms],
                _lastEpoch is { } e ? new EpochSummary(e.Epoch, e.Step, e.TrainLoss, e.TrainAccuracy, e.TestLoss, e.TestAccuracy,
                    e.SamplesPerSecond, e.GradNorm, e.Seconds) : null,
                _gradients.Alerts(_step), [.. _messages],
                _steps.Generation, _steps.Count, _epochs.Count, _gradients.Events, _version);
        }
    }

    public SeriesSlice StepHistory(int from = 0)
    {
        lock (_gate) return _steps.Slice(from);
    }

    public SeriesSlice EpochHistory()
    {
        lock (_gate) return _epochs.Slice(0);
    }

    /// <summary>The in-process worker's figures (local mode).</summary>
    public LocalWork LocalWorkSnapshot()
    {
        lock (_gate) return new LocalWork(_started && !_finished && _endState is null, _lastLatency, _rate, _shardsDone, _lastStepAt);
    }
}

public readonly record struct LocalWork(bool Training, double LastStepLatency, double SamplesPerSecond, long ShardsDone, double LastStepAt);

public sealed record EpochSummary(
    int Epoch, long Step, double TrainLoss, double TrainAccuracy, double TestLoss, double TestAccuracy,
    double SamplesPerSecond, double GradNorm, double Seconds);

/// <summary>A consistent view of the run at one moment; NaN means "not known yet".</summary>
/// <param name="State">starting, running, finishing (epochs done), finished, failed or interrupted.</param>
/// <param name="EndReason">Why a run failed or was interrupted; null otherwise.</param>
public sealed record TelemetrySnapshot(
    string State, string? EndReason, string Model, long Step, long StartStep, long TotalSteps, int Epoch, int Epochs, int Batch, int BatchesPerEpoch,
    double ElapsedSeconds, double EtaSeconds, double Loss, double Accuracy, double SamplesPerSecond, double GradNorm,
    double LearningRate, double LastStepSeconds, long Samples, long SkippedSteps, long ClipEvents,
    IReadOnlyList<string> Layers, double[] LayerNorms, EpochSummary? LastEpoch, IReadOnlyList<GradientAlert> Alerts,
    IReadOnlyList<string> Messages, long StepGeneration, int StepPoints, int EpochPoints, long AlertEvents, long Version);
