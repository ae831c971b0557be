// Bad input to a live dashboard never hurts training: unknown routes get 404, an oversized query string or header
// is refused by Kestrel's limits, and past 200 live event streams new ones get 503; the step counter keeps advancing.
using System.Net;

namespace DistTrain.Tests.Dashboard;

[Collection(DashboardCollection.Name)]
public class DashboardRobustnessTests(SharedDashboardRun shared)
{
    [Fact]
    public async Task UnknownRoutesAndOversizedRequestsAreRefused()
    {
        var run = shared.Run;
        long before = await run.StepAsync();
        foreach (string path in (string[])["nope", "api/nope", "api/status/extra", "wwwroot/app.js", "../../etc/passwd"])
        {
            using var response = await run.Http.GetAsync(path);
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        }
        using (var response = await run.Http.GetAsync("api/metrics?from=notanumber"))
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);

        using (var response = await run.Http.GetAsync("api/status?q=" + new string('x', 100 * 1024)))
            Assert.Equal(HttpStatusCode.RequestUriTooLong, response.StatusCode);
        using (var request = new HttpRequestMessage(HttpMethod.Get, "api/status"))
        {
            request.Headers.Add("X-Big", new string('y', 64 * 1024));
            using var response = await run.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, response.StatusCode);
        }
        await run.WaitForStepAfterAsync(before, TimeSpan.FromSeconds(10));
        Assert.False(run.HasExited, run.Stderr);
    }

    [Fact]
    public async Task EventStreamsAreBoundedAndTrainingKeepsGoing()
    {
        var run = shared.Run;
        const int max = 200;
        // A stream an earlier test opened may still be closing: let it go (bounded) before counting the open ones.
        int already = (await run.StatusAsync()).GetProperty("eventClients").GetInt32();
        for (var until = DateTime.UtcNow + TimeSpan.FromSeconds(10); already > 0 && DateTime.UtcNow < until;)
        {
            await Task.Delay(100);
            already = (await run.StatusAsync()).GetProperty("eventClients").GetInt32();
        }
        using var handler = new SocketsHttpHandler { MaxConnectionsPerServer = 400 };
        using var client = new HttpClient(handler) { BaseAddress = run.Address, Timeout = TimeSpan.FromSeconds(20) };
        var streams = new List<HttpResponseMessage>();
        try
        {
            var opening = Enumerable.Range(0, max).Select(_ => client.GetAsync("api/events", HttpCompletionOption.ResponseHeadersRead));
            streams.AddRange(await Task.WhenAll(opening));
            int ok = streams.Count(s => s.StatusCode == HttpStatusCode.OK);
            Assert.Equal(max - already, ok);
            Assert.All(streams.Where(s => s.StatusCode != HttpStatusCode.OK), s => Assert.Equal(HttpStatusCode.ServiceUnavailable, s.StatusCode));
            using (var extra = await client.GetAsync("api/events", HttpCompletionOption.ResponseHeadersRead))
                Assert.Equal(HttpStatusCode.ServiceUnavailable, extra.StatusCode);

            // Streams deliver events, and training advances while all of them are open.
            using (var reader = new StreamReader(await streams.First(s => s.IsSuccessStatusCode).Content.ReadAsStreamAsync()))
            {
                string? line;
                while ((line = await reader.ReadLineAsync()) is not null && !line.StartsWith("data: ", StringComparison.Ordinal)) { }
                Assert.NotNull(line);
            }
            long step = await run.StepAsync();
            await run.WaitForStepAfterAsync(step, TimeSpan.FromSeconds(10));
        }
        finally
        {
            foreach (var s in streams) s.Dispose();
        }

        // Closed streams leave the hub, and a new one is served again.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while ((await run.StatusAsync()).GetProperty("eventClients").GetInt32() > already)
        {
            Assert.True(DateTime.UtcNow < deadline, "closed event streams were not released within 10 s");
            await Task.Delay(100);
        }
        using (var again = await run.Http.GetAsync("api/events", HttpCompletionOption.ResponseHeadersRead))
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        await run.WaitForStepAfterAsync(await run.StepAsync(), TimeSpan.FromSeconds(10));
        Assert.False(run.HasExited, run.Stderr);
    }
}
