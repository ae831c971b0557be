// Bytes and time of distributed steps: per-worker request/reply bytes and how much of each step was spent waiting
// on anything but the slowest worker's compute (serialization, transfer, scheduling) — the benchmark's figures.
namespace DistTrain.Coordinator.Distributed;

public sealed class TrafficStats
{
    private readonly object _lock = new();
    private readonly Dictionary<string, (long Sent, long Received, long Requests)> _perWorker = [];
    private readonly Dictionary<string, (long Sent, long Received)> _sharedPerWorker = [];

    public long Steps { get; private set; }
    public double StepSeconds { get; private set; }
    /// <summary>Σ over steps of (gradient-source wall time − slowest worker's reported compute time).</summary>
    public double NetworkWaitSeconds { get; private set; }

    /// <summary>Also told of every request's bytes (the dashboard's Prometheus counters); must be thread-safe.</summary>
    public Action<long, long>? OnTraffic { get; set; }

    /// <summary>
    /// One request: gRPC bytes each way, and the bytes the worker read (weights) and wrote (gradient sums) through
    /// shared memory instead.
    /// </summary>
    public void Add(string worker, long sent, long received, long sharedSent = 0, long sharedReceived = 0, bool request = true)
    {
        OnTraffic?.Invoke(sent, received);
        lock (_lock)
        {
            var (s, r, n) = _perWorker.GetValueOrDefault(worker);
            _perWorker[worker] = (s + sent, r + received, n + (request ? 1 : 0));
            var (ss, sr) = _sharedPerWorker.GetValueOrDefault(worker);
            _sharedPerWorker[worker] = (ss + sharedSent, sr + sharedReceived);
        }
    }

    public IReadOnlyDictionary<string, (long Sent, long Received)> SharedPerWorker()
    {
        lock (_lock) return new Dictionary<string, (long, long)>(_sharedPerWorker);
    }

    public void EndStep(double seconds, double slowestCompute)
    {
        string? notice;
        lock (_lock)
        {
            Steps++;
            StepSeconds += seconds;
            NetworkWaitSeconds += Math.Max(0, seconds - slowestCompute);
            notice = Monitor?.Observe(seconds, slowestCompute);
        }
        if (notice is not null) OnNotice?.Invoke(notice);
    }

    /// <summary>Judges each step's split (the cluster sets it before the first step); null: no judgement.</summary>
    public Control.CommunicationMonitor? Monitor { get; set; }

    /// <summary>Called once, off the training thread's lock, when the monitor finds the run communication-bound.</summary>
    public Action<string>? OnNotice { get; set; }

    public IReadOnlyDictionary<string, (long Sent, long Received, long Requests)> PerWorker()
    {
        lock (_lock) return new Dictionary<string, (long, long, long)>(_perWorker);
    }
}
