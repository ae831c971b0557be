// Local mode's workers table: the in-process compute threads shown as one "local" worker, always heard from (same
// process) and ready; the run's state follows the telemetry.
using DistTrain.Coordinator.Control;

namespace DistTrain.Coordinator.Dashboard;

public sealed class LocalWorkerStatusSource(TrainingTelemetry telemetry, int threads) : IWorkerStatusSource
{
    public ClusterView Snapshot()
    {
        var work = telemetry.LocalWorkSnapshot();
        var snapshot = telemetry.Snapshot();
        var run = snapshot.State switch { "finished" => RunState.Finished, "running" => RunState.Training, _ => RunState.Starting };
        var local = new WorkerView("local", 1, "in-process", threads, WorkerState.Ready, "", 0, work.LastStepLatency,
            work.LastStepLatency, work.SamplesPerSecond, work.ShardsDone, 0, 0, WorkerHealth.Ok, "");
        return new ClusterView(telemetry.Now, run, snapshot.State, snapshot.Step - 1, 0, work.LastStepLatency, [local]);
    }
}
