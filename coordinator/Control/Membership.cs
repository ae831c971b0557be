// The roster: the current record of every worker (one immutable WorkerRecord per life) in registration order, and
// what the machine measures of each. Ids are w1, w2, … in order of first registration; an address seen before (and
// not refused) keeps its id and moves to its next generation. Forgotten records leave; their ids are never given again.
namespace DistTrain.Coordinator.Control;

internal sealed class Membership(ControlOptions options)
{
    private readonly List<WorkerRecord> _records = [];
    private readonly Dictionary<string, int> _index = [];
    private readonly Dictionary<string, WorkerMeter> _meters = [];
    private int _issued;

    public IReadOnlyList<WorkerRecord> All => _records;

    public WorkerRecord? Find(string id) => _index.TryGetValue(id, out int i) ? _records[i] : null;

    /// <summary>The record of that life of the worker, or null when it has registered again since (or never).</summary>
    public WorkerRecord? Current(string id, long generation) => Find(id) is { } r && r.Generation == generation ? r : null;

    public WorkerRecord? WithAddress(string address) =>
        _records.FirstOrDefault(r => r.Address == address && r.State != WorkerState.Refused);

    /// <summary>The record of a worker that registered from this address and was refused (its model or data).</summary>
    public WorkerRecord? RefusedAt(string address) =>
        _records.FirstOrDefault(r => r.Address == address && r.State == WorkerState.Refused);

    public WorkerMeter Meter(string id) => _meters[id];

    public WorkerRecord Add(string address, int cores, TimeSpan now)
    {
        var record = new WorkerRecord($"w{++_issued}", 1, address, cores, WorkerState.Preparing, now);
        _index[record.Id] = _records.Count;
        _records.Add(record);
        _meters[record.Id] = new WorkerMeter(options.HealthWindow);
        return record;
    }

    public void Set(WorkerRecord record) => _records[_index[record.Id]] = record;

    /// <summary>Forgets a worker: its record and meter leave (O(records), which --max-workers bounds).</summary>
    public void Remove(string id)
    {
        int at = _index[id];
        _records.RemoveAt(at);
        _index.Remove(id);
        _meters.Remove(id);
        for (int i = at; i < _records.Count; i++) _index[_records[i].Id] = i;
    }

    public int Count(WorkerState state) => _records.Count(r => r.State == state);

    /// <summary>
    /// Ready workers in registration order with the throughput to plan by: measured, or — for a worker not yet
    /// measured — the measured per-core rate of the others times its cores, so new and old compare fairly.
    /// </summary>
    public IReadOnlyList<(WorkerRecord Worker, double Throughput)> Planning()
    {
        var ready = _records.Where(r => r.State == WorkerState.Ready).ToList();
        var measured = ready.Where(r => _meters[r.Id].Throughput > 0).ToList();
        double perCore = measured.Count > 0 ? measured.Sum(r => _meters[r.Id].Throughput) / measured.Sum(r => r.Cores) : 1;
        return ready.Select(r => (r, _meters[r.Id].Throughput > 0 ? _meters[r.Id].Throughput : perCore * r.Cores)).ToList();
    }

    /// <summary>One line on who is not ready and why, for waiting and failure messages.</summary>
    public string DescribeAbsent()
    {
        var absent = _records.Where(r => r.State != WorkerState.Ready)
            .Select(r => $"{r.Id} {r.State.ToString().ToLowerInvariant()}{(r.Reason.Length > 0 ? $" ({r.Reason})" : "")}");
        string text = string.Join("; ", absent);
        return text.Length > 0 ? text : "no worker has registered";
    }
}
