// The dashboard's TrainingObserver: the Trainer calls it on the training thread, so each event is handed to the
// telemetry (a short lock) and the step-latency histogram (lock-free) and returns at once.
using DistTrain.Core.Training;

namespace DistTrain.Coordinator.Dashboard;

public sealed class DashboardObserver(TrainingTelemetry telemetry, PrometheusExporter exporter) : TrainingObserver
{
    public override void OnStart(string description, long startStep, long totalSteps) =>
        telemetry.Start(description, startStep, totalSteps);

    public override void OnStep(in StepReport report)
    {
        telemetry.RecordStep(report);
        exporter.ObserveStepLatency(report.Seconds);
    }

    public override void OnEpoch(EpochMetrics metrics) => telemetry.RecordEpoch(metrics);

    public override void OnCheckpoint(string path, long step) => telemetry.RecordMessage($"checkpoint at step {step}: {path}");

    public override void OnMessage(string message) => telemetry.RecordMessage(message);
}
