// The dashboard policy the lead wires into the dashboard: everything on loopback; off loopback read-only, with the
// status page and /healthz public and everything else behind the bearer token; no token off loopback is refused.
using DistTrain.Coordinator.Security;
using DistTrain.Core;
using DistTrain.Protos.Security;

namespace DistTrain.Tests.Security;

public class DashboardSecurityTests
{
    private const string Secret = "0123456789abcdef0123456789abcdef";
    private static readonly SharedToken Token = SharedToken.Parse(Secret, "test");

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("localhost")]
    [InlineData("::1")]
    public void LoopbackAllowsEverything(string bind)
    {
        foreach (var token in new[] { null, Token })
        {
            var policy = DashboardSecurity.Create(bind, token);
            Assert.True(policy.IsLoopback);
            Assert.Equal(DashboardAccess.Allowed, policy.Decide("GET", "/api/status", null));
            Assert.Equal(DashboardAccess.Allowed, policy.Decide("POST", "/api/anything", null));
        }
    }

    [Fact]
    public void ElsewhereItIsReadOnlyAndOnlyTheStatusPageIsPublic()
    {
        var policy = DashboardSecurity.Create("0.0.0.0", Token);
        Assert.False(policy.IsLoopback);
        Assert.Equal(DashboardAccess.Allowed, policy.Decide("GET", "/", null));
        Assert.Equal(DashboardAccess.Allowed, policy.Decide("HEAD", "/healthz", null));
        // The status page: its assets and the run summary it shows.
        foreach (var path in new[] { "/index.html", "/app.js", "/chart.js", "/style.css", "/api/status" })
            Assert.Equal(DashboardAccess.Allowed, policy.Decide("GET", path, null));
        foreach (var path in new[] { "/metrics", "/api/events", "/api/metrics", "/api/workers" })
        {
            Assert.Equal(DashboardAccess.Unauthorized, policy.Decide("GET", path, null));
            Assert.Equal(DashboardAccess.Unauthorized, policy.Decide("GET", path, "Bearer " + SecureCluster.NewToken()));
            Assert.Equal(DashboardAccess.Allowed, policy.Decide("GET", path, "Bearer " + Secret));
        }
        foreach (var method in new[] { "POST", "PUT", "DELETE", "PATCH" })
            Assert.Equal(DashboardAccess.MethodNotAllowed, policy.Decide(method, "/api/status", "Bearer " + Secret));
        Assert.Equal(401, DashboardSecurity.StatusCode(DashboardAccess.Unauthorized));
        Assert.Equal(405, DashboardSecurity.StatusCode(DashboardAccess.MethodNotAllowed));
    }

    [Theory]
    [InlineData("0.0.0.0")]
    [InlineData("::")]
    [InlineData("192.168.1.20")]
    public void ElsewhereWithoutATokenIsRefusedAtStartup(string bind)
    {
        var error = Assert.Throws<UserInputException>(() => DashboardSecurity.Create(bind, null));
        Assert.Contains("needs a shared token", error.Message);
    }

    [Theory]
    [InlineData("127.0.0.1:8080", true)]
    [InlineData("localhost:8080", true)]
    [InlineData("LOCALHOST", true)]
    [InlineData("[::1]:8080", true)]
    [InlineData("127.9.9.9", true)]
    [InlineData("attacker.example:8080", false)]
    [InlineData("127.0.0.1.attacker.example", false)]
    [InlineData("", false)]
    [InlineData(null, false)]
    public void OnLoopbackOnlyLoopbackHostNamesAreServed(string? host, bool served)
    {
        // A page elsewhere can point its own DNS name at 127.0.0.1 (DNS rebinding); its requests carry that name.
        var policy = DashboardSecurity.Create("127.0.0.1", null);
        Assert.Equal(served ? DashboardAccess.Allowed : DashboardAccess.MisdirectedHost, policy.Decide("GET", "/api/status", null, host));
        Assert.Equal(421, DashboardSecurity.StatusCode(DashboardAccess.MisdirectedHost));
    }

    [Fact]
    public async Task TheDashboardServesHealthzAndRefusesAForeignHost()
    {
        using var run = new Dashboard.DashboardProcess();
        Assert.Equal("serving", (await run.Http.GetStringAsync("healthz")).Trim());
        using var request = new HttpRequestMessage(HttpMethod.Get, "api/status");
        request.Headers.Host = "rebound.example";
        using var response = await run.Http.SendAsync(request);
        Assert.Equal(System.Net.HttpStatusCode.MisdirectedRequest, response.StatusCode);
    }
}
