// What the dashboard knows about the machines computing gradients: a snapshot list of worker rows. Local mode has
// one in-process "local" worker; distributed mode implements this over its worker registry.
namespace DistTrain.Coordinator.Dashboard;

/// <summary>Done: the run has ended, whatever the worker was doing.</summary>
public enum WorkerState { Ready, Busy, Slow, Lost, Rejoining, Done }

/// <summary>One row of the workers table; times in seconds, NaN when not known yet.</summary>
public sealed record WorkerStatus(
    string Id, string Address, WorkerState State, double HeartbeatAgeSeconds, double LastStepLatencySeconds,
    double SamplesPerSecond, long ShardsDone, long Errors, int Cores);

public interface IWorkerStatusSource
{
    /// <summary>A fresh snapshot; called from the dashboard's own tasks, never from the training thread.</summary>
    IReadOnlyList<WorkerStatus> Snapshot();
}
