// /metrics of a live run parsed by a strict text-format parser (not string matching), and the parser itself shown
// to reject what the format forbids.
using System.Net;

namespace DistTrain.Tests.Dashboard;

[Collection(DashboardCollection.Name)]
public class PrometheusExpositionTests(SharedDashboardRun shared)
{
    [Fact]
    public async Task MetricsEndpointIsValidExposition()
    {
        var run = shared.Run;
        await run.WaitForStepAfterAsync(0, TimeSpan.FromSeconds(10));
        using var response = await run.Http.GetAsync("metrics");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType);
        var families = PrometheusTextParser.Parse(await response.Content.ReadAsStringAsync());

        PrometheusFamily Family(string name, string type)
        {
            Assert.True(families.TryGetValue(name, out var f), $"{name} missing");
            Assert.Equal(type, f!.Type);
            Assert.False(string.IsNullOrEmpty(f.Help));
            return f;
        }
        double Single(string name, string type) => Assert.Single(Family(name, type).Samples).Value;

        Assert.True(Single("disttrain_steps_total", "counter") > 0);
        Assert.True(Single("disttrain_samples_total", "counter") > 0);
        Assert.Equal(0, Single("disttrain_bytes_sent_total", "counter"));
        Assert.Equal(0, Single("disttrain_bytes_received_total", "counter"));
        Assert.True(double.IsFinite(Single("disttrain_train_loss", "gauge")));
        Assert.InRange(Single("disttrain_train_accuracy", "gauge"), 0, 1);
        Assert.True(Single("disttrain_grad_norm", "gauge") >= 0);
        Assert.Equal(2, Family("disttrain_layer_grad_norm", "gauge").Samples.Count); // two linear layers
        var states = Family("disttrain_worker_state", "gauge").Samples.Where(s => s.Labels["worker"] == "local").ToList();
        Assert.Equal(Enum.GetNames<DistTrain.Coordinator.Control.WorkerState>().Length, states.Count);
        Assert.Equal(1, states.Sum(s => s.Value));
        Assert.Equal("ready", states.Single(s => s.Value == 1).Labels["state"]);
        var health = Family("disttrain_worker_health", "gauge").Samples.Where(s => s.Labels["worker"] == "local").ToList();
        Assert.Equal("ok", health.Single(s => s.Value == 1).Labels["health"]);
        Assert.Equal(0, Assert.Single(Family("disttrain_worker_errors_total", "counter").Samples, s => s.Labels["worker"] == "local").Value);
        var latency = Family("disttrain_step_latency_seconds", "histogram");
        Assert.True(latency.Samples.Single(s => s.Name.EndsWith("_count", StringComparison.Ordinal)).Value > 0);
    }

    [Fact]
    public void ParserAcceptsTheSpecExample()
    {
        const string text = """
            # HELP http_requests_total The total number of HTTP requests.
            # TYPE http_requests_total counter
            http_requests_total{method="post",code="200"} 1027 1395066363000
            http_requests_total{method="post",code="400"}    3 1395066363000

            # Escaping in label values:
            msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9
            metric_without_timestamp_and_labels 12.47
            # A weird metric from before the epoch:
            something_weird{problem="division by zero"} +Inf -3982045
            # HELP help_with_escapes A backslash \\ and a\nnewline.
            # TYPE help_with_escapes gauge
            help_with_escapes NaN
            # TYPE http_request_duration_seconds histogram
            http_request_duration_seconds_bucket{le="0.05"} 24054
            http_request_duration_seconds_bucket{le="0.1"} 33444
            http_request_duration_seconds_bucket{le="+Inf"} 144320
            http_request_duration_seconds_sum 53423
            http_request_duration_seconds_count 144320

            """;
        var families = PrometheusTextParser.Parse(text.Replace("\r\n", "\n"));
        Assert.Equal(2, families["http_requests_total"].Samples.Count);
        Assert.Equal("C:\\DIR\\FILE.TXT", families["msdos_file_access_time_seconds"].Samples[0].Labels["path"]);
        Assert.Equal("Cannot find file:\n\"FILE.TXT\"", families["msdos_file_access_time_seconds"].Samples[0].Labels["error"]);
        Assert.Equal(-3982045, families["something_weird"].Samples[0].Timestamp);
        Assert.True(double.IsPositiveInfinity(families["something_weird"].Samples[0].Value));
        Assert.Equal("A backslash \\ and a\nnewline.", families["help_with_escapes"].Help);
        Assert.Equal(5, families["http_request_duration_seconds"].Samples.Count);
    }

    [Theory]
    [InlineData("bad-name 1\n")]
    [InlineData("x{a=\"b} 1\n")]
    [InlineData("x{a=\"\\q\"} 1\n")]
    [InlineData("x{__reserved=\"v\"} 1\n")]
    [InlineData("x{a=b} 1\n")]
    [InlineData("x 1.2.3\n")]
    [InlineData("x 1")]
    [InlineData("x\n")]
    [InlineData("x 1 2 3\n")]
    [InlineData("x 1\nx 2\n")]
    [InlineData("x 1\ny 1\nx{a=\"1\"} 1\n")]
    [InlineData("x 1\n# TYPE x gauge\n")]
    [InlineData("# TYPE x countr\nx 1\n")]
    [InlineData("# TYPE x counter\nx -1\n")]
    [InlineData("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n")]
    [InlineData("# TYPE h histogram\nh_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n")]
    [InlineData("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n")]
    public void ParserRejectsMalformedInput(string text) =>
        Assert.Throws<PrometheusFormatException>(() => PrometheusTextParser.Parse(text));
}
