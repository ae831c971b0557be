// Membership as a deterministic state machine: registrations, heartbeats and ticks (time passed in, never read)
// move workers through Registered → Preparing → Ready, or to Refused / Lost. The gRPC service, the preparer and the
// gradient source only call in; unit tests drive it with a fake clock.
namespace DistTrain.Coordinator.Distributed;

public enum WorkerState { Registered, Preparing, Ready, Refused, Lost }

public sealed class WorkerEntry
{
    public required string Id { get; init; }
    public required string Address { get; init; }
    public required int Cores { get; init; }
    public WorkerState State { get; internal set; }
    public TimeSpan LastSeen { get; internal set; }
    /// <summary>EWMA of samples per second over its requests (0 until measured).</summary>
    public double Throughput { get; internal set; }
    public string Reason { get; internal set; } = "";
    public IWorkerClient? Client { get; internal set; }
    public long BlocksComputed { get; internal set; }
    public long Errors { get; internal set; }
}

public sealed class WorkerRegistry
{
    /// <summary>Weight of the newest measurement in the throughput average.</summary>
    private const double Smoothing = 0.5;
    private readonly object _lock = new();
    private readonly List<WorkerEntry> _workers = [];
    private TaskCompletionSource _changed = NewSignal();
    private int _nextId;

    public WorkerRegistry(TimeSpan heartbeatInterval, TimeSpan heartbeatTimeout)
    {
        HeartbeatInterval = heartbeatInterval;
        HeartbeatTimeout = heartbeatTimeout;
    }

    public TimeSpan HeartbeatInterval { get; }
    public TimeSpan HeartbeatTimeout { get; }

    /// <summary>Adds a worker; a live entry at the same address (a restarted worker) is replaced and marked lost.</summary>
    public WorkerEntry Register(string address, int cores, TimeSpan now)
    {
        lock (_lock)
        {
            foreach (var old in _workers)
                if (old.Address == address && old.State is not (WorkerState.Lost or WorkerState.Refused))
                    Drop(old, WorkerState.Lost, "registered again (restarted)");
            var entry = new WorkerEntry
            {
                Id = $"w{++_nextId}", Address = address, Cores = Math.Max(1, cores), State = WorkerState.Registered,
                LastSeen = now,
            };
            _workers.Add(entry);
            Signal();
            return entry;
        }
    }

    /// <summary>False when the id is unknown or lost: the worker must register again.</summary>
    public bool Heartbeat(string id, TimeSpan now)
    {
        lock (_lock)
        {
            var entry = Find(id);
            if (entry is null || entry.State == WorkerState.Lost) return false;
            entry.LastSeen = now;
            return true;
        }
    }

    /// <summary>Marks workers silent for longer than the timeout as lost; returns them.</summary>
    public IReadOnlyList<WorkerEntry> Tick(TimeSpan now)
    {
        lock (_lock)
        {
            var lost = _workers.Where(w => w.State is WorkerState.Registered or WorkerState.Preparing or WorkerState.Ready
                && now - w.LastSeen > HeartbeatTimeout).ToList();
            foreach (var w in lost) Drop(w, WorkerState.Lost, $"no heartbeat for {(now - w.LastSeen).TotalSeconds:F1}s");
            if (lost.Count > 0) Signal();
            return lost;
        }
    }

    /// <summary>Claims the registered workers that nobody is preparing yet.</summary>
    public IReadOnlyList<WorkerEntry> TakeUnprepared()
    {
        lock (_lock)
        {
            var list = _workers.Where(w => w.State == WorkerState.Registered).ToList();
            foreach (var w in list) w.State = WorkerState.Preparing;
            return list;
        }
    }

    public void MarkReady(string id, IWorkerClient client)
    {
        lock (_lock)
        {
            if (Find(id) is not { State: WorkerState.Preparing } entry) return;
            entry.State = WorkerState.Ready;
            entry.Client = client;
            Signal();
        }
    }

    public void MarkRefused(string id, string reason) => Transition(id, WorkerState.Refused, reason);
    public void MarkLost(string id, string reason) => Transition(id, WorkerState.Lost, reason);

    public void RecordThroughput(string id, int samples, double seconds, int blocks)
    {
        if (samples <= 0 || !(seconds > 0)) return;
        lock (_lock)
        {
            if (Find(id) is not { } entry) return;
            double measured = samples / seconds;
            entry.Throughput = entry.Throughput > 0 ? Smoothing * measured + (1 - Smoothing) * entry.Throughput : measured;
            entry.BlocksComputed += blocks;
        }
    }

    public void RecordError(string id)
    {
        lock (_lock) { if (Find(id) is { } entry) entry.Errors++; }
    }

    /// <summary>
    /// Ready workers in registration order with the throughput to plan by: measured, or — for a worker not yet
    /// measured — the measured per-core rate of the others times its cores, so new and old compare fairly.
    /// </summary>
    public IReadOnlyList<(string Id, double Throughput)> ReadyForPlanning()
    {
        lock (_lock)
        {
            var ready = _workers.Where(w => w.State == WorkerState.Ready).ToList();
            var measured = ready.Where(w => w.Throughput > 0).ToList();
            double perCore = measured.Count > 0 ? measured.Sum(w => w.Throughput) / measured.Sum(w => w.Cores) : 1;
            return ready.Select(w => (w.Id, w.Throughput > 0 ? w.Throughput : perCore * w.Cores)).ToList();
        }
    }

    public WorkerEntry? Get(string id)
    {
        lock (_lock) return Find(id);
    }

    public IReadOnlyList<WorkerEntry> Snapshot()
    {
        lock (_lock) return _workers.ToList();
    }

    /// <summary>Completes at the next change of membership or state.</summary>
    public Task WaitForChangeAsync(CancellationToken cancellationToken)
    {
        lock (_lock) return _changed.Task.WaitAsync(cancellationToken);
    }

    private void Transition(string id, WorkerState state, string reason)
    {
        lock (_lock)
        {
            if (Find(id) is not { } entry || entry.State == WorkerState.Lost) return;
            Drop(entry, state, reason);
            Signal();
        }
    }

    private static void Drop(WorkerEntry entry, WorkerState state, string reason)
    {
        entry.State = state;
        entry.Reason = reason;
        entry.Client = null;
    }

    private WorkerEntry? Find(string id) => _workers.FirstOrDefault(w => w.Id == id);

    private void Signal()
    {
        var old = _changed;
        _changed = NewSignal();
        old.TrySetResult();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
