// The dashboard after the run: the final state (finished, or failed with the reason), every worker done, a page that
// stops listening instead of showing "reconnecting", and --keep-dashboard serving that state until Ctrl+C.
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Playwright;

namespace DistTrain.Tests.Dashboard;

public class RunEndTests
{
    private static async Task<JsonElement> PollStatusAsync(DashboardProcess run, string state, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var status = await run.StatusAsync();
            if (status.GetProperty("training").GetProperty("state").GetString() == state) return status;
            Assert.True(DateTime.UtcNow < deadline, $"/api/status did not say {state} within {timeout.TotalSeconds} s: {status.GetProperty("training")}");
            await Task.Delay(200);
        }
    }

    private static void ShortRun(JsonObject config, int epochs, int samples = 2_000)
    {
        config["training"]!["epochs"] = epochs;
        config["data"]!["samples"] = samples;
    }

    [Fact]
    public async Task AFinishedRunKeepsServingItsFinalStateWithKeepDashboard()
    {
        using var run = new DashboardProcess(c => ShortRun(c, 2), "--keep-dashboard");
        var status = await PollStatusAsync(run, "finished", TimeSpan.FromSeconds(60));

        Assert.Equal(JsonValueKind.Null, status.GetProperty("training").GetProperty("endReason").ValueKind);
        var workers = status.GetProperty("workers").EnumerateArray().ToList();
        Assert.NotEmpty(workers);
        Assert.All(workers, w => Assert.Equal("done", w.GetProperty("state").GetString()));
        // Still serving: the process waits for Ctrl+C, and says so.
        await Task.Delay(500);
        Assert.False(run.HasExited, run.Stderr);
        Assert.Contains("the final state stays at", run.Stderr);
        // A page opened now gets the final state as its first event.
        using var stream = await run.Http.GetStreamAsync("api/events");
        using var reader = new StreamReader(stream);
        string? line;
        while ((line = await reader.ReadLineAsync()) is not null && !line.StartsWith("data: ", StringComparison.Ordinal)) { }
        Assert.NotNull(line);
        Assert.Equal("finished", JsonDocument.Parse(line[6..]).RootElement.GetProperty("status").GetProperty("training").GetProperty("state").GetString());
    }

    [Fact]
    public async Task AFailedRunSaysWhy()
    {
        using var run = new DashboardProcess(c =>
        {
            ShortRun(c, 2);
            c["optimizer"] = new JsonObject { ["type"] = "sgd", ["learningRate"] = 1e30 };
            c["training"]!["nonFinite"] = "stop";
        }, "--keep-dashboard");
        var status = await PollStatusAsync(run, "failed", TimeSpan.FromSeconds(60));
        string reason = status.GetProperty("training").GetProperty("endReason").GetString()!;
        Assert.Contains("not finite", reason);
        Assert.Contains(reason, run.Stderr); // the same words as the error line
    }

    [ChromiumFact]
    public async Task ThePageShowsTheEndAndDoesNotReconnectAfterTheProcessExits()
    {
        // 1,500 epochs of 16,000 samples on one thread: several seconds (millions of samples a second), long enough to
        // open the page, short enough to wait for the end.
        // The browser is up before the run starts: a slow browser start on a busy machine does not eat the run's time.
        var (playwright, browser) = await Chromium.LaunchAsync();
        using var _ = playwright;
        await using var __ = browser;
        var page = await browser.NewPageAsync();
        using var run = new DashboardProcess(c => ShortRun(c, 1_500, 20_000));
        await page.GotoAsync(run.Address.ToString());
        var connection = page.Locator("#connection");
        await page.WaitForFunctionAsync("() => document.querySelector('#connection').textContent === 'finished'", null,
            new PageWaitForFunctionOptions { Timeout = 60_000 });
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!run.HasExited && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.True(run.HasExited, "the run did not exit after finishing");
        // The page's stream would retry after 2 s ("retry: 2000") and say "reconnecting"; wait past that.
        await Task.Delay(3_000);
        Assert.Equal("finished", await connection.InnerTextAsync());
        Assert.Equal("Done", await page.InnerTextAsync("#workers tbody tr[data-worker='local'] td.state"));
    }
}
