// /metrics in the Prometheus text format, from a private registry per dashboard (tests run several in one process).
// Everything is brought up to date at scrape time: gauges and counters from a telemetry snapshot, and the latency
// histogram from per-bucket tallies the training thread keeps. Observing the histogram directly from the training
// thread would let a scrape print _count before and buckets after a step, and the two would disagree. The byte
// counters are for distributed mode's transport to increment (they stay 0 in local mode). Worker rows come from the
// control plane's published view: the same states, errors and health as /api/status.
using DistTrain.Coordinator.Control;
using Prometheus;

namespace DistTrain.Coordinator.Dashboard;

public sealed class PrometheusExporter
{
    private static readonly string[] States = Enum.GetNames<WorkerState>().Select(s => s.ToLowerInvariant()).ToArray();
    private static readonly string[] Healths = Enum.GetNames<WorkerHealth>().Select(s => s.ToLowerInvariant()).ToArray();

    private readonly TrainingTelemetry _telemetry;
    private readonly IWorkerStatusSource _workers;
    private readonly Counter _steps, _samples, _skipped, _clips, _bytesSent, _bytesReceived, _shards, _errors;
    private readonly Gauge _loss, _accuracy, _testLoss, _testAccuracy, _gradNorm, _layerNorm, _rate, _learningRate, _epoch,
        _alerts, _workerState, _workerHealth, _heartbeatAge;
    private readonly Histogram _stepLatency;
    private readonly double[] _latencyBounds = Histogram.ExponentialBuckets(0.0005, 2, 16);
    private readonly Lock _latencyGate = new(), _refreshGate = new();
    private readonly long[] _latencyCounts;
    private readonly double[] _latencySums;

    public PrometheusExporter(TrainingTelemetry telemetry, IWorkerStatusSource workers)
    {
        _telemetry = telemetry;
        _workers = workers;
        Registry = Metrics.NewCustomRegistry();
        var f = Metrics.WithCustomRegistry(Registry);
        _steps = f.CreateCounter("disttrain_steps_total", "Optimizer steps completed (including skipped ones).");
        _samples = f.CreateCounter("disttrain_samples_total", "Training samples processed in this run.");
        _skipped = f.CreateCounter("disttrain_skipped_steps_total", "Steps skipped because the averaged gradient was not finite.");
        _clips = f.CreateCounter("disttrain_clip_events_total", "Steps whose gradient was clipped by global norm.");
        _shards = f.CreateCounter("disttrain_worker_shards_total", "Shards computed, by worker.", "worker");
        _errors = f.CreateCounter("disttrain_worker_errors_total",
            "Blocks rejected (bad shape or range, non-finite) and requests failed, by worker.", "worker");
        _bytesSent = f.CreateCounter("disttrain_bytes_sent_total", "Bytes sent to workers (0 in local mode).");
        _bytesReceived = f.CreateCounter("disttrain_bytes_received_total", "Bytes received from workers (0 in local mode).");
        _loss = f.CreateGauge("disttrain_train_loss", "Mean training loss of the last step.");
        _accuracy = f.CreateGauge("disttrain_train_accuracy", "Training accuracy of the last step (0..1).");
        _testLoss = f.CreateGauge("disttrain_test_loss", "Test loss after the last epoch.");
        _testAccuracy = f.CreateGauge("disttrain_test_accuracy", "Test accuracy after the last epoch (0..1).");
        _gradNorm = f.CreateGauge("disttrain_grad_norm", "Global L2 norm of the last averaged gradient (before clipping).");
        _layerNorm = f.CreateGauge("disttrain_layer_grad_norm", "Per-layer L2 norm of the last averaged gradient.", "layer");
        _rate = f.CreateGauge("disttrain_samples_per_second", "Training throughput (moving average).");
        _learningRate = f.CreateGauge("disttrain_learning_rate", "Learning rate of the last step.");
        _epoch = f.CreateGauge("disttrain_epoch", "Current epoch (1-based).");
        _alerts = f.CreateGauge("disttrain_gradient_alerts_active", "Gradient alerts fired in the recent window.");
        _workerState = f.CreateGauge("disttrain_worker_state", "1 for the worker's current state, 0 for the others.", "worker", "state");
        _workerHealth = f.CreateGauge("disttrain_worker_health",
            "1 for the worker's health (ok, straggler, hung), 0 for the others.", "worker", "health");
        _heartbeatAge = f.CreateGauge("disttrain_worker_heartbeat_age_seconds", "Seconds since the worker was last heard from.", "worker");
        _stepLatency = f.CreateHistogram("disttrain_step_latency_seconds", "Wall time of one training step.",
            new HistogramConfiguration { Buckets = _latencyBounds });
        _latencyCounts = new long[_latencyBounds.Length + 1];
        _latencySums = new double[_latencyBounds.Length + 1];
        Registry.AddBeforeCollectCallback(Refresh);
    }

    public CollectorRegistry Registry { get; }

    /// <summary>Called on the training thread: tallies the step into its bucket (published at the next scrape).</summary>
    public void ObserveStepLatency(double seconds)
    {
        int bucket = 0;
        while (bucket < _latencyBounds.Length && seconds > _latencyBounds[bucket]) bucket++;
        lock (_latencyGate)
        {
            _latencyCounts[bucket]++;
            _latencySums[bucket] += seconds;
        }
    }
    public void AddBytesSent(long bytes) => _bytesSent.Inc(bytes);
    public void AddBytesReceived(long bytes) => _bytesReceived.Inc(bytes);

    private void Refresh()
    {
        lock (_refreshGate) RefreshLocked();
    }

    private void RefreshLocked()
    {
        // Each bucket's new steps enter at their mean latency, which lies in the same bucket, so the buckets and
        // _sum come out exact.
        Span<long> counts = stackalloc long[_latencyCounts.Length];
        Span<double> sums = stackalloc double[_latencySums.Length];
        lock (_latencyGate)
        {
            _latencyCounts.CopyTo(counts);
            _latencySums.CopyTo(sums);
            Array.Clear(_latencyCounts);
            Array.Clear(_latencySums);
        }
        for (int i = 0; i < counts.Length; i++)
            if (counts[i] > 0)
            {
                double mean = sums[i] / counts[i];
                // Rounding must not carry a mean of values all equal to a bound into the next bucket.
                _stepLatency.Observe(i < _latencyBounds.Length ? Math.Min(mean, _latencyBounds[i]) : mean, counts[i]);
            }

        var s = _telemetry.Snapshot();
        _steps.IncTo(s.Step - s.StartStep);
        _samples.IncTo(s.Samples);
        _skipped.IncTo(s.SkippedSteps);
        _clips.IncTo(s.ClipEvents);
        _loss.Set(s.Loss);
        _accuracy.Set(s.Accuracy);
        _testLoss.Set(s.LastEpoch?.TestLoss ?? double.NaN);
        _testAccuracy.Set(s.LastEpoch?.TestAccuracy ?? double.NaN);
        _gradNorm.Set(s.GradNorm);
        for (int i = 0; i < s.Layers.Count; i++) _layerNorm.WithLabels(s.Layers[i]).Set(s.LayerNorms[i]);
        _rate.Set(s.SamplesPerSecond);
        _learningRate.Set(s.LearningRate);
        _epoch.Set(s.Epoch);
        _alerts.Set(s.Alerts.Count(a => a.Active));
        foreach (var w in _workers.Snapshot().Workers)
        {
            string state = w.State.ToString().ToLowerInvariant(), health = w.Health.ToString().ToLowerInvariant();
            foreach (var candidate in States) _workerState.WithLabels(w.Id, candidate).Set(candidate == state ? 1 : 0);
            foreach (var candidate in Healths) _workerHealth.WithLabels(w.Id, candidate).Set(candidate == health ? 1 : 0);
            _heartbeatAge.WithLabels(w.Id).Set(w.HeartbeatAgeSeconds);
            _shards.WithLabels(w.Id).IncTo(w.ShardsDone);
            _errors.WithLabels(w.Id).IncTo(w.Errors);
        }
    }
}
