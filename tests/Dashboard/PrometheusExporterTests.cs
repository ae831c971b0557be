// The exporter in-process: scrapes taken while the training thread keeps reporting steps stay self-consistent
// (histogram buckets agree with _count), and every reported step is counted exactly once.
using System.Text;
using DistTrain.Coordinator.Dashboard;

namespace DistTrain.Tests.Dashboard;

public class PrometheusExporterTests
{
    [Fact]
    public async Task ScrapesStayConsistentWhileStepsArrive()
    {
        var telemetry = new TrainingTelemetry(["0"], 1, new DashboardOptions());
        var exporter = new PrometheusExporter(telemetry, new LocalWorkerStatusSource(telemetry, 1));
        using var stop = new CancellationTokenSource();
        long observed = 0;
        var steps = Task.Run(() =>
        {
            var random = new Random(1);
            while (!stop.IsCancellationRequested)
            {
                exporter.ObserveStepLatency(random.NextDouble() * 0.01);
                observed++;
            }
        });
        for (int i = 0; i < 100; i++) Assert.NotEmpty(await ScrapeAsync(exporter));
        stop.Cancel();
        await steps;
        var latency = (await ScrapeAsync(exporter))["disttrain_step_latency_seconds"];
        Assert.Equal(observed, latency.Samples.Single(s => s.Name == "disttrain_step_latency_seconds_count").Value);
    }

    [Fact]
    public async Task BytesCountersAreForDistributedMode()
    {
        var telemetry = new TrainingTelemetry(["0"], 1, new DashboardOptions());
        var exporter = new PrometheusExporter(telemetry, new LocalWorkerStatusSource(telemetry, 1));
        exporter.AddBytesSent(1000);
        exporter.AddBytesReceived(24);
        var families = await ScrapeAsync(exporter);
        Assert.Equal(1000, Assert.Single(families["disttrain_bytes_sent_total"].Samples).Value);
        Assert.Equal(24, Assert.Single(families["disttrain_bytes_received_total"].Samples).Value);
    }

    private static async Task<Dictionary<string, PrometheusFamily>> ScrapeAsync(PrometheusExporter exporter)
    {
        using var buffer = new MemoryStream();
        await exporter.Registry.CollectAndExportAsTextAsync(buffer);
        return PrometheusTextParser.Parse(Encoding.UTF8.GetString(buffer.ToArray()));
    }
}
