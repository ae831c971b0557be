// Membership as a deterministic state machine: registrations, heartbeats and ticks (time passed in, never read)
// move workers through Registered → Preparing → Ready, or to Refused / Lost. A worker that registers again from an
// address it had before keeps its id and goes Rejoining → Preparing → Ready (re-prepared: it may have restarted and
// lost its model). Workers join the plan only at a step boundary (BeginStep). The gRPC service, the preparer and the
// gradient source only call in; unit tests drive it with a fake clock.
namespace DistTrain.Coordinator.Distributed;

public enum WorkerState { Registered, Preparing, Ready, Refused, Lost, Rejoining }

public sealed class WorkerEntry
{
    public required string Id { get; init; }
    public required string Address { get; init; }
    public int Cores { get; internal set; }
    public WorkerState State { get; internal set; }
    public TimeSpan LastSeen { get; internal set; }
    /// <summary>EWMA of samples per second over its requests (0 until measured).</summary>
    public double Throughput { get; internal set; }
    public string Reason { get; internal set; } = "";
    public IWorkerClient? Client { get; internal set; }
    /// <summary>Its gradient slots when it accepted the same-host transport; null when it talks gRPC only.</summary>
    public Protos.SharedSlots? Shared { get; internal set; }
    /// <summary>The CPUs its compute threads are bound to (same-host workers only; empty when not bound).</summary>
    public IReadOnlyList<int> Cpus { get; internal set; } = [];
    public long BlocksComputed { get; internal set; }
    /// <summary>Wall time of its last completed request in seconds (NaN before the first).</summary>
    public double LastRequestSeconds { get; internal set; } = double.NaN;
    public long Errors { get; internal set; }
    /// <summary>The step that was running (or last started) when the worker became ready; it plans from the next.</summary>
    public long ReadyDuringStep { get; internal set; } = -1;
    /// <summary>How often this id came back after being lost or restarting.</summary>
    public int Rejoins { get; internal set; }
}

/// <summary>A ready worker as planned for one step: the client captured then, so later changes cannot leak in.</summary>
public sealed record PlannedWorker(string Id, double Throughput, IWorkerClient Client, Protos.SharedSlots? Shared = null,
    IReadOnlyList<int>? Cpus = null);

public sealed class WorkerRegistry
{
    /// <summary>
    /// Weight of the newest measurement in the throughput average: a half-life of about 2.4 steps. At 0.5, the
    /// step-to-step noise of two equal workers on a shared machine flipped 8 shards between 4:4 and 5:3 splits
    /// (received bytes per step 464 KiB instead of 397.6); at 0.25 nearly every step is split evenly.
    /// </summary>
    private const double Smoothing = 0.25;
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

    /// <summary>
    /// Names this coordinator run. Ids restart at w1 after a restart, so a worker that still heartbeats with the id a
    /// previous run gave it must not be taken for the worker that now holds that id.
    /// </summary>
    public string RunId { get; } = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8)).ToLowerInvariant();
    public TimeSpan HeartbeatTimeout { get; }

    /// <summary>
    /// Adds a worker. One registering again from a known address (back after being lost, or restarted) keeps its id
    /// and becomes Rejoining: its old client is dropped and it is prepared again before it gets work.
    /// </summary>
    public WorkerEntry Register(string address, int cores, TimeSpan now)
    {
        lock (_lock)
        {
            if (_workers.FirstOrDefault(w => w.Address == address && w.State != WorkerState.Refused) is { } known)
            {
                Drop(known, WorkerState.Rejoining, known.State == WorkerState.Lost ? $"back after: {known.Reason}" : "registered again (restarted)");
                known.Cores = Math.Max(1, cores);
                known.LastSeen = now;
                known.ReadyDuringStep = -1;
                known.Rejoins++;
                known.Throughput = 0; // measured afresh: it may be another machine, or the last figure a stall's
                Signal();
                return known;
            }
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
            var lost = _workers.Where(w => w.State is WorkerState.Registered or WorkerState.Rejoining or WorkerState.Preparing
                or WorkerState.Ready && now - w.LastSeen > HeartbeatTimeout).ToList();
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
            var list = _workers.Where(w => w.State is WorkerState.Registered or WorkerState.Rejoining).ToList();
            foreach (var w in list) w.State = WorkerState.Preparing;
            return list;
        }
    }

    public void MarkReady(string id, IWorkerClient client, Protos.SharedSlots? shared = null, IReadOnlyList<int>? cpus = null)
    {
        lock (_lock)
        {
            if (Find(id) is not { State: WorkerState.Preparing } entry) return;
            entry.State = WorkerState.Ready;
            entry.Client = client;
            entry.Shared = shared;
            entry.Cpus = cpus ?? [];
            entry.ReadyDuringStep = CurrentStep;
            Signal();
        }
    }

    public void MarkRefused(string id, string reason) => Transition(id, WorkerState.Refused, reason);
    public void MarkLost(string id, string reason) => Transition(id, WorkerState.Lost, reason);

    /// <summary>
    /// A request over <paramref name="client"/> failed: the worker is lost — unless it has registered again since
    /// (its entry holds another client or none), in which case the failure belongs to its previous life.
    /// </summary>
    public bool MarkLost(string id, IWorkerClient client, string reason)
    {
        lock (_lock)
        {
            if (Find(id) is not { State: WorkerState.Ready } entry || !ReferenceEquals(entry.Client, client)) return false;
            Drop(entry, WorkerState.Lost, reason);
            Signal();
            return true;
        }
    }

    /// <summary>The step in progress (or last started); -1 before the first.</summary>
    public long CurrentStep { get; private set; } = -1;

    /// <summary>
    /// Starts step <paramref name="step"/> and returns the workers to plan it with, atomically: a worker that becomes
    /// ready after this call records this step and is planned from the next one.
    /// </summary>
    public IReadOnlyList<PlannedWorker> BeginStep(long step)
    {
        lock (_lock)
        {
            CurrentStep = step;
            var planning = ReadyForPlanning();
            return planning.Select(p => new PlannedWorker(p.Id, p.Throughput, Find(p.Id)!.Client!, Find(p.Id)!.Shared, Find(p.Id)!.Cpus)).ToList();
        }
    }

    /// <summary>True while <paramref name="id"/> is still ready with the client it was planned with.</summary>
    public bool IsCurrent(string id, IWorkerClient client)
    {
        lock (_lock) return Find(id) is { State: WorkerState.Ready } entry && ReferenceEquals(entry.Client, client);
    }

    /// <summary>One line on who is not ready and why, for waiting and failure messages.</summary>
    public string DescribeAbsent()
    {
        lock (_lock)
        {
            var absent = _workers.Where(w => w.State != WorkerState.Ready)
                .Select(w => $"{w.Id} {w.State.ToString().ToLowerInvariant()}{(w.Reason.Length > 0 ? $" ({w.Reason})" : "")}");
            string text = string.Join("; ", absent);
            return text.Length > 0 ? text : "no worker has registered";
        }
    }

    public void RecordThroughput(string id, int samples, double seconds, int blocks)
    {
        if (samples <= 0 || !(seconds > 0)) return;
        lock (_lock)
        {
            if (Find(id) is not { } entry) return;
            double measured = samples / seconds;
            entry.Throughput = entry.Throughput > 0 ? Smoothing * measured + (1 - Smoothing) * entry.Throughput : measured;
            entry.BlocksComputed += blocks;
            entry.LastRequestSeconds = seconds;
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
