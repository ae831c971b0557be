// Distributed mode's workers table: rows from the coordinator's worker registry, classified by WorkerHealth
// (heartbeat silence → Lost, far slower than its peers → Slow) on the registry's own clock.
using DistTrain.Coordinator.Distributed;

namespace DistTrain.Coordinator.Dashboard;

public sealed class RegistryWorkerStatusSource(WorkerRegistry registry, ClusterClock clock, WorkerHealthOptions health)
    : IWorkerStatusSource
{
    public IReadOnlyList<WorkerStatus> Snapshot()
    {
        var entries = registry.Snapshot();
        double now = clock.Now.TotalSeconds;
        var observations = entries.Select(e => new WorkerObservation(
            // A worker the registry has given up on (or refused) is lost whatever its last heartbeat said.
            LastHeartbeat: e.State is Distributed.WorkerState.Lost or Distributed.WorkerState.Refused
                ? double.NegativeInfinity : e.LastSeen.TotalSeconds,
            Assigned: e.State == Distributed.WorkerState.Ready && e.BlocksComputed > 0,
            Rejoining: e.State is Distributed.WorkerState.Rejoining
                || (e.State == Distributed.WorkerState.Preparing && e.Rejoins > 0),
            LastStepLatency: e.LastRequestSeconds)).ToList();
        var states = WorkerHealth.ClassifyAll(observations, now, health);
        return entries.Select((e, i) => new WorkerStatus(e.Id, e.Address, states[i], now - e.LastSeen.TotalSeconds,
            e.LastRequestSeconds, e.Throughput, e.BlocksComputed, e.Errors, e.Cores)).ToList();
    }
}
