// The dashboard of a real `disttrain train` process in a real browser: the local worker is listed, the step counter
// and the loss chart advance without a reload, and an exploding run shows its alert on the page and in /api/status.
using Microsoft.Playwright;

namespace DistTrain.Tests.Dashboard;

[Collection(DashboardCollection.Name)]
public class DashboardBrowserTests(SharedDashboardRun shared)
{
    private const string LossLine = "#chart-loss polyline[data-series='train (per step)']";

    private static async Task<T> PollAsync<T>(Func<Task<T>> read, Func<T, bool> done, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        T value;
        while (!done(value = await read()))
        {
            Assert.True(DateTime.UtcNow < deadline, $"{what} within {timeout.TotalSeconds} s; last value {value}");
            await Task.Delay(200);
        }
        return value;
    }

    [ChromiumFact]
    public async Task WorkersStepCounterAndLossChartUpdateLive()
    {
        var run = shared.Run;
        var (playwright, browser) = await Chromium.LaunchAsync();
        using var _ = playwright;
        await using var __ = browser;
        var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 900 } });
        await page.GotoAsync(run.Address.ToString());

        var state = page.Locator("#workers tbody tr[data-worker='local'] td.state");
        await state.WaitForAsync(new LocatorWaitForOptions { Timeout = 15_000 });
        Assert.Contains(await state.InnerTextAsync(), new[] { "Ready", "Busy" });
        Assert.Equal("1", await page.InnerTextAsync("#workers tbody tr[data-worker='local'] td:last-child")); // cores

        // A marker on window survives only if the page is never reloaded.
        await page.EvaluateAsync("window.__noReload = 42");
        await page.WaitForSelectorAsync(LossLine, new PageWaitForSelectorOptions { Timeout = 15_000 });
        long firstStep = await Step(page);
        double firstX = await LastLossX(page);
        long laterStep = await PollAsync(() => Step(page), s => s > firstStep,
            TimeSpan.FromSeconds(10), "the step counter advances");
        double laterX = await PollAsync(() => LastLossX(page), x => x > firstX, TimeSpan.FromSeconds(10), "the loss chart gains points");
        Assert.True(int.Parse(await page.GetAttributeAsync(LossLine, "data-points") ?? "0") > 1);
        Assert.Equal(42, await page.EvaluateAsync<int>("window.__noReload"));
        Assert.Equal("live", await page.InnerTextAsync("#connection"));
        Assert.True(laterStep > firstStep && laterX > firstX);

        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Chromium.ArtifactPath("dashboard.png"), FullPage = true });
        await page.SetViewportSizeAsync(390, 844); // a phone
        await Task.Delay(300);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Chromium.ArtifactPath("dashboard-phone.png"), FullPage = true });
        Assert.False(run.HasExited, run.Stderr);
    }

    // The step counter as shown (data-value holds the unformatted number).
    private static async Task<long> Step(IPage page) => long.Parse(await page.GetAttributeAsync("#step", "data-value") ?? "-1");

    // The x (step) of the newest point on the per-step loss line.
    private static async Task<double> LastLossX(IPage page) =>
        await page.EvaluateAsync<double>($"() => {{ const p = document.querySelector(\"{LossLine}\"); return p ? Number(p.dataset.lastX ?? -1) : -1; }}");

    [ChromiumFact]
    public async Task ExplodingGradientsShowTheAlert()
    {
        using var run = new DashboardProcess(c => c["optimizer"] = new System.Text.Json.Nodes.JsonObject
        {
            ["type"] = "sgd",
            ["learningRate"] = 1e4,
        });
        var alerts = await PollAsync(async () => (await run.StatusAsync()).GetProperty("training").GetProperty("alerts"),
            a => a.GetArrayLength() > 0, TimeSpan.FromSeconds(15), "/api/status lists a gradient alert");
        var kinds = alerts.EnumerateArray().Select(a => a.GetProperty("kind").GetString()).ToList();
        Assert.True(kinds.Intersect(["exploding", "nonFinite", "skippedSteps"]).Any(), string.Join(", ", kinds));

        var (playwright, browser) = await Chromium.LaunchAsync();
        using var _ = playwright;
        await using var __ = browser;
        var page = await browser.NewPageAsync();
        await page.GotoAsync(run.Address.ToString());
        var banner = page.Locator("#alerts");
        await banner.WaitForAsync(new LocatorWaitForOptions { State = WaitForSelectorState.Visible, Timeout = 15_000 });
        string text = await banner.InnerTextAsync();
        Assert.Matches("exploding|non-finite|skipped", text);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Chromium.ArtifactPath("dashboard-alert.png"), FullPage = true });
    }
}
