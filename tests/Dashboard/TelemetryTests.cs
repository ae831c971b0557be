// The dashboard's state stays bounded over long runs and counts what it should: downsampled history, gradient
// alerts (vanishing, exploding, non-finite, skipped), and the event-stream cap.
using DistTrain.Coordinator.Dashboard;
using DistTrain.Core.Training;

namespace DistTrain.Tests.Dashboard;

public class TelemetryTests
{
    [Fact]
    public void HistoryStaysBoundedAndKeepsAverages()
    {
        var series = new DownsampledSeries(["v"], capacity: 8);
        for (int step = 1; step <= 1000; step++) series.Add(step, [step]);
        Assert.InRange(series.Count, 4, 8);
        var slice = series.Slice(0);
        Assert.Equal(slice.Steps.Order(), slice.Steps); // x stays increasing
        Assert.True(series.Generation > 0);
        // Each stored point is the mean of the raw values it covers, ending at its step.
        for (int i = 0; i < slice.Steps.Length; i++)
            Assert.Equal(slice.Steps[i] - (series.Stride - 1) / 2.0, slice.Series["v"][i], 6);
    }

    [Fact]
    public void NonFiniteValuesAreLeftOutOfAverages()
    {
        var series = new DownsampledSeries(["v"], capacity: 4);
        series.Add(1, [1]);
        series.Add(2, [double.NaN]);
        series.Add(3, [3]);
        series.Add(4, [double.PositiveInfinity]); // full: compacts to (1, 3)
        var slice = series.Slice(0);
        Assert.Equal([2L, 4L], slice.Steps);
        Assert.Equal([1.0, 3.0], slice.Series["v"]);
    }

    [Fact]
    public void GradientMonitorCountsEachKind()
    {
        var monitor = new GradientMonitor(["a", "b"], vanishingBelow: 1e-7, explodingAbove: 1e3) { RecentSteps = 10 };
        monitor.Check(0, [1.0, 1.0], skipped: false);
        Assert.Empty(monitor.Alerts(0));
        monitor.Check(1, [1e-9, 5e3], skipped: false);
        monitor.Check(2, [double.NaN, double.PositiveInfinity], skipped: true);
        var alerts = monitor.Alerts(3);
        Assert.Contains(alerts, a => a is { Kind: GradientAlertKind.Vanishing, Layer: "a", Count: 1, FirstStep: 1, Active: true });
        Assert.Contains(alerts, a => a is { Kind: GradientAlertKind.Exploding, Layer: "b", Count: 1 });
        Assert.Equal(2, alerts.Count(a => a.Kind == GradientAlertKind.NonFinite));
        Assert.Contains(alerts, a => a is { Kind: GradientAlertKind.SkippedSteps, Count: 1, LastStep: 2 });
        Assert.All(monitor.Alerts(100), a => Assert.False(a.Active)); // long ago: shown as earlier, not active
    }

    [Fact]
    public void TelemetryRecordsStepsEpochsAndClips()
    {
        var telemetry = new TrainingTelemetry(["l0", "l1"], 2, new DashboardOptions { HistoryPoints = 16 });
        telemetry.Start("m", 0, 200);
        var outcome = new StepOutcome(2) { Samples = 10, Correct = 5, LossSum = 20, GradientNorm = 2, Clipped = true };
        for (int i = 0; i < 200; i++)
        {
            outcome.Step = i;
            outcome.LayerNorms[0] = 1;
            outcome.LayerNorms[1] = 1e4;
            telemetry.RecordStep(new StepReport(i / 100, i % 100, 100, outcome, [new BlockRecord(0, 3, "local")], default, 16, 0.001));
        }
        telemetry.RecordEpoch(new EpochMetrics(2, 2, 200, 2, 0.5, 2.5, 0.4, 2, 1000, 1, 1, 0.1f, 0, 200, []));
        var s = telemetry.Snapshot();
        Assert.Equal(("finishing", 200L, 2.0, 0.5, 200L, 2000L), (s.State, s.Step, s.Loss, s.Accuracy, s.ClipEvents, s.Samples));
        telemetry.End("finished", null);
        Assert.Equal(("finished", (string?)null), (telemetry.Snapshot().State, telemetry.Snapshot().EndReason));
        Assert.InRange(s.StepPoints, 8, 16);
        Assert.Equal(600, telemetry.LocalWorkSnapshot().ShardsDone);
        Assert.Contains(s.Alerts, a => a is { Kind: GradientAlertKind.Exploding, Layer: "l1", Count: 200 });
        Assert.Equal(1, s.EpochPoints);
    }

    [Fact]
    public void EventStreamHubIsBounded()
    {
        var hub = new EventStreamHub(maxClients: 3);
        var subscriptions = Enumerable.Range(0, 3).Select(_ => hub.TryJoin()).ToList();
        Assert.All(subscriptions, Assert.NotNull);
        Assert.Null(hub.TryJoin());
        subscriptions[0]!.Dispose();
        using var again = hub.TryJoin();
        Assert.NotNull(again);
        // A slow reader keeps only the newest few payloads.
        for (int i = 0; i < 100; i++) hub.Broadcast(i.ToString());
        var received = new List<string>();
        while (again!.Reader.TryRead(out var payload)) received.Add(payload);
        Assert.Equal(["96", "97", "98", "99"], received);
    }
}
