// The workers table in a real browser, fed a control-plane view with every kind of row: a straggler and a hung
// worker are shown as such with what makes them so, a lost worker with its reason, and the run's phase above the
// table. The dashboard runs in this process over a fixed view, so the page is checked without a cluster.
using System.Text.Json;
using DistTrain.Coordinator.Control;
using DistTrain.Coordinator.Dashboard;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Playwright;

namespace DistTrain.Tests.Dashboard;

public class WorkerHealthBrowserTests
{
    private sealed class FixedView(ClusterView view) : IWorkerStatusSource
    {
        public ClusterView Snapshot() => view;
    }

    private static WorkerView Row(string id, WorkerState state, WorkerHealth health, string reason = "", string detail = "") =>
        new(id, 1, $"http://10.0.0.{id[1..]}:5000", 2, state, reason, 0.4, 0.05, 0.05, 1000, 120, 0, 0, health, detail);

    [ChromiumFact]
    public async Task StragglersHangsAndLostWorkersAreShownWithWhatMakesThemSo()
    {
        var view = new ClusterView(12, RunState.Training, "step 42, attempt 1: 3 of 4 blocks in, 1 request(s) open", 42, 1, 0.012,
        [
            Row("w1", WorkerState.Ready, WorkerHealth.Ok),
            Row("w2", WorkerState.Ready, WorkerHealth.Straggler, detail: "median request 120 ms over its last 8 vs. 50 ms for its peers (2.4×)"),
            Row("w3", WorkerState.Ready, WorkerHealth.Hung,
                detail: "no answer for 1.2 s (limit 500 ms, median step 12 ms); waiting for its reply to step 42, attempt 1, blocks [2,4)"),
            Row("w4", WorkerState.Lost, WorkerHealth.Ok, reason: "no heartbeat for 10.2s"),
        ]);
        var options = new DashboardOptions { Port = 0 };
        var telemetry = new TrainingTelemetry(["0"], 1, options);
        var source = new FixedView(view);
        await using var dashboard = await DashboardServer.TryStartAsync(options, telemetry, source, new PrometheusExporter(telemetry, source),
            new RunInfo("distributed", "sgd", 1, JsonDocument.Parse("{}").RootElement), NullLoggerFactory.Instance,
            Coordinator.Security.DashboardSecurity.Create("127.0.0.1", null), default);
        Assert.NotNull(dashboard);

        var (playwright, browser) = await Chromium.LaunchAsync();
        using var _ = playwright;
        await using var __ = browser;
        var page = await browser.NewPageAsync();
        await page.GotoAsync(dashboard.Address.ToString());
        string Cell(string worker, string cell) => $"#workers tbody tr[data-worker='{worker}'] td.{cell}";
        await page.Locator(Cell("w3", "health")).WaitForAsync(new LocatorWaitForOptions { Timeout = 15_000 });

        Assert.Equal("Ok", await page.InnerTextAsync(Cell("w1", "health")));
        Assert.Equal(["Straggler", "median request 120 ms over its last 8 vs. 50 ms for its peers (2.4×)"],
            (await page.InnerTextAsync(Cell("w2", "health"))).Split('\n'));
        Assert.StartsWith("Hung\nno answer for 1.2 s", await page.InnerTextAsync(Cell("w3", "health")));
        Assert.Contains("waiting for its reply to step 42, attempt 1, blocks [2,4)", await page.InnerTextAsync(Cell("w3", "health")));
        Assert.Equal("Lost\nno heartbeat for 10.2s", await page.InnerTextAsync(Cell("w4", "state")));
        Assert.Equal("hung", await page.GetAttributeAsync("#workers tbody tr[data-worker='w3']", "data-health"));
        Assert.Contains("Training · step 42, attempt 1", await page.InnerTextAsync("#cluster"));
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Chromium.ArtifactPath("dashboard-worker-health.png"), FullPage = true });
    }
}
