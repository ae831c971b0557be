// Two real workers behind a `disttrain train --listen` coordinator: both appear on the dashboard, and a worker killed
// with SIGKILL is shown Lost within 5 s; a healthy run of two same-host workers reports no worker errors. Runs only
// once the distributed mode (worker binary, --listen) is built.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using DistTrain.Tests.Cli;
using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Dashboard;

/// <summary>A fact that needs distributed mode: DistTrain.Worker.dll beside the tests and --listen in disttrain --help.</summary>
public sealed class DistributedFactAttribute : FactAttribute
{
    private static readonly Lazy<string?> Missing = new(() =>
    {
        if (!File.Exists(Path.Combine(AppContext.BaseDirectory, "DistTrain.Worker.dll")))
            return "distributed mode not built: no DistTrain.Worker.dll next to the tests";
        var (_, stdout, stderr) = CliProcess.Run(["--help"], TimeSpan.FromSeconds(30));
        return (stdout + stderr).Contains("--listen", StringComparison.Ordinal)
            ? null : "distributed mode not merged yet: disttrain --help has no --listen";
    });

    public DistributedFactAttribute()
    {
        if (Missing.Value is { } reason) Skip = reason;
    }
}

public class DistributedDashboardTests
{
    [DistributedFact]
    public async Task KilledWorkerIsLostWithinFiveSeconds()
    {
        using var dir = new TempDirectory();
        var config = ConfigFiles.Blobs(samples: 20_000, epochs: 1_000_000, batch: 50, shard: 25);
        string path = ConfigFiles.Write(dir.Path, config);
        int port = FreePort();
        string listen = $"http://127.0.0.1:{port}";
        using var coordinator = CliProcess.Start("disttrain.dll",
            ["train", "--config", path, "--listen", listen, "--expect-workers", "2", "--dashboard-port", "0"]);
        using var first = CliProcess.Start("DistTrain.Worker.dll", ["--coordinator", listen, "--threads", "1"]);
        using var second = CliProcess.Start("DistTrain.Worker.dll", ["--coordinator", listen, "--threads", "1"]);

        var dashboard = await Eventually(() => Task.FromResult(
            System.Text.RegularExpressions.Regex.Match(coordinator.Stderr, @"dashboard: (http://[^\s/]+/)") is { Success: true } m
                ? new Uri(m.Groups[1].Value) : null), TimeSpan.FromSeconds(30), "the dashboard address", coordinator);
        using var http = new HttpClient { BaseAddress = dashboard, Timeout = TimeSpan.FromSeconds(5) };
        async Task<JsonElement[]> Workers() =>
            [.. JsonDocument.Parse(await http.GetStringAsync("api/status")).RootElement.GetProperty("workers").EnumerateArray()];

        await Eventually(async () => (await Workers()) is { Length: 2 } w && w.All(x => x.GetProperty("state").GetString() is "busy" or "ready")
            ? w : null, TimeSpan.FromSeconds(40), "two workers Ready/Busy", coordinator);

        var killedAt = Stopwatch.StartNew();
        first.Kill();
        await Eventually(async () => (await Workers()).Any(x => x.GetProperty("state").GetString() == "lost") ? "lost" : null,
            TimeSpan.FromSeconds(5), "the killed worker shown Lost", coordinator);
        Assert.InRange(killedAt.Elapsed.TotalSeconds, 0, 5);
        Assert.False(coordinator.HasExited, coordinator.Stderr);
    }

    [DistributedFact]
    public async Task AHealthyPoolRunReportsNoWorkerErrors()
    {
        // Two in-process workers over shared memory share each step's pool: every request names every pool block, and
        // each worker answers "claimed elsewhere" for the blocks the other took. Those are not errors.
        using var run = new DashboardProcess(null, "--workers", "2");
        await run.WaitForStepAfterAsync(500, TimeSpan.FromSeconds(60));
        Assert.Equal(2, run.Stderr.Split('\n').Count(l => l.Contains("weights and gradients through shared memory", StringComparison.Ordinal)));
        var status = await run.StatusAsync();
        var workers = status.GetProperty("workers").EnumerateArray().ToList();
        Assert.Equal(2, workers.Count);
        Assert.All(workers, w =>
        {
            Assert.Equal(("ready", 0L), (w.GetProperty("state").GetString(), w.GetProperty("errors").GetInt64()));
            // Both computed blocks of the pool: each also answered for blocks the other had claimed.
            Assert.True(w.GetProperty("shardsDone").GetInt64() > 0, w.ToString());
        });
        Assert.Equal("training", status.GetProperty("cluster").GetProperty("run").GetString());
        var errors = PrometheusTextParser.Parse(await run.Http.GetStringAsync("metrics"))["disttrain_worker_errors_total"].Samples;
        Assert.Equal(2, errors.Count);
        Assert.All(errors, e => Assert.Equal(0, e.Value));
        if (!Chromium.Installed) return; // the page's check needs a browser (.ci/run installs one)

        // And the page: the Errors column of both worker rows.
        var (playwright, browser) = await Chromium.LaunchAsync();
        using var _ = playwright;
        await using var __ = browser;
        var page = await browser.NewPageAsync();
        await page.GotoAsync(run.Address.ToString());
        await page.WaitForFunctionAsync("() => document.querySelectorAll('#workers tbody tr').length === 2", null,
            new Microsoft.Playwright.PageWaitForFunctionOptions { Timeout = 15_000 });
        var shown = await page.EvaluateAsync<string[]>(@"() => {
            const column = [...document.querySelectorAll('#workers thead th')].findIndex(th => th.textContent.trim() === 'Errors');
            return [...document.querySelectorAll('#workers tbody tr')].map(tr => tr.children[column].textContent.trim());
        }");
        Assert.Equal(["0", "0"], shown);
    }

    private static async Task<T> Eventually<T>(Func<Task<T?>> probe, TimeSpan timeout, string what, CliProcess owner) where T : class
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                if (await probe() is { } value) return value;
            }
            catch (HttpRequestException)
            {
                // Not serving yet.
            }
            Assert.True(DateTime.UtcNow < deadline, $"no {what} within {timeout.TotalSeconds} s; coordinator stderr:\n{owner.Stderr}");
            await Task.Delay(100);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
