// Local mode's workers table: the in-process compute threads shown as one "local" worker. It is always heard from
// (same process), Busy while training runs and Ready before and after.
namespace DistTrain.Coordinator.Dashboard;

public sealed class LocalWorkerStatusSource(TrainingTelemetry telemetry, int threads, WorkerHealthOptions health) : IWorkerStatusSource
{
    public IReadOnlyList<WorkerStatus> Snapshot()
    {
        var work = telemetry.LocalWorkSnapshot();
        double now = telemetry.Now;
        var state = WorkerHealth.Classify(new WorkerObservation(now, work.Training, false, work.LastStepLatency),
            now, work.LastStepLatency, health);
        return [new WorkerStatus("local", "in-process", state, 0, work.LastStepLatency, work.SamplesPerSecond,
            work.ShardsDone, 0, threads)];
    }
}
