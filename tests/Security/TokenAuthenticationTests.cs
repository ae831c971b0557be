// The shared token on real processes, in both directions: workers without it, with a near-miss of it, or with
// another deployment's are refused by the coordinator (Unauthenticated, logged with the peer); callers without it
// are refused by a worker; the right token trains to local mode's weights; the secrets never reach a log. The right
// token alone does not drive a worker: its coordinator's session secret must come with it.
using DistTrain.Protos;
using DistTrain.Tests.Distributed;
using Grpc.Core;
using Grpc.Net.Client;

namespace DistTrain.Tests.Security;

public sealed class TokenAuthenticationTests : IDisposable
{
    private readonly SecureCluster _cluster = new();

    [Fact]
    public void WorkersWithoutTheDeploymentsTokenAreRefusedAndOnlyTheRightOneTrains()
    {
        string token = SecureCluster.NewToken(), otherDeployment = SecureCluster.NewToken();
        string nearMiss = token[..^1] + (token[^1] == 'a' ? 'b' : 'a');
        string tokenFile = _cluster.WriteFile("token", token + "\n");
        string config = _cluster.WriteConfig();
        int port = ProcessHarness.FreePort();
        string url = $"http://127.0.0.1:{port}", save = _cluster.File("distributed.safetensors");
        var coordinator = _cluster.Coordinator(url, config, save, new Dictionary<string, string> { ["DISTTRAIN_TOKEN_FILE"] = tokenFile });
        ProcessHarness.WaitForPort(port);

        var refused = new[]
        {
            _cluster.Worker("no-token", url),
            _cluster.Worker("near-miss", url, new Dictionary<string, string> { ["DISTTRAIN_TOKEN"] = nearMiss }),
            _cluster.Worker("other-deployment", url, new Dictionary<string, string> { ["DISTTRAIN_TOKEN"] = otherDeployment }),
        };
        foreach (var worker in refused)
        {
            var (code, output) = ProcessHarness.Wait(worker, TimeSpan.FromSeconds(60));
            Assert.True(code == 1, output);
            Assert.Contains("refused this worker: Unauthenticated", output);
        }
        var good = _cluster.Worker("good", url, new Dictionary<string, string> { ["DISTTRAIN_TOKEN"] = token });
        var (exit, coordinatorOutput) = ProcessHarness.Wait(coordinator, SecureCluster.RunTimeout);
        Assert.True(exit == 0, _cluster.AllOutput());

        Assert.Equal(_cluster.TrainLocal(config), File.ReadAllBytes(save));
        Assert.Contains("refused an unauthenticated call to /disttrain.v1.Coordinator/Register from 127.0.0.1:", coordinatorOutput);
        Assert.Contains("no bearer token", coordinatorOutput);
        // At least one each from the near miss and the other deployment (a slow start may make a worker retry).
        Assert.True(coordinatorOutput.Split('\n').Count(l => l.Contains("wrong bearer token")) >= 2, coordinatorOutput);
        Assert.Contains("worker w1 registered", coordinatorOutput);
        good.Process.Kill();
        _cluster.AssertNeverLogged(token, nearMiss, otherDeployment);
    }

    [Fact]
    public async Task WorkerRefusesCallersWithoutTheTokenButServesHealth()
    {
        string token = SecureCluster.NewToken();
        int port = ProcessHarness.FreePort();
        await using var coordinator = await RecordingCoordinator.StartAsync(token);
        var worker = _cluster.Worker("worker", coordinator.Url,
            new Dictionary<string, string> { ["DISTTRAIN_TOKEN"] = token, ["DISTTRAIN_WORKER__PORT"] = port.ToString() });
        ProcessHarness.WaitForPort(port);
        string session = await coordinator.SecretAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(StatusCode.Unauthenticated, CallStatus(port, authorization: null));
        Assert.Equal(StatusCode.Unauthenticated, CallStatus(port, "Bearer " + SecureCluster.NewToken()));
        Assert.Equal(StatusCode.Unauthenticated, CallStatus(port, token)); // the secret without the Bearer scheme
        Assert.Equal(StatusCode.Unauthenticated, CallStatus(port, "Bearer " + token)); // no session secret
        Assert.Equal(StatusCode.OK, CallStatus(port, "Bearer " + token, session));
        Assert.Equal(0, await HealthEndpoint.ProbeAsync([$"http://127.0.0.1:{port}{HealthEndpoint.Path}"]));

        SecureCluster.WaitForOutput(worker.Output, "wrong bearer token", TimeSpan.FromSeconds(10));
        string log = ProcessHarness.Text(worker.Output);
        Assert.Contains("refused an unauthenticated call to /disttrain.v1.Worker/Status from 127.0.0.1:", log);
        Assert.Contains("no bearer token", log);
        _cluster.AssertNeverLogged(token);
    }

    [Fact]
    public void NodeWithoutATokenRefusesToBindANonLoopbackAddress()
    {
        var worker = _cluster.Worker("open-worker", "http://127.0.0.1:1", extra: ["--host", "0.0.0.0"]);
        var (code, output) = ProcessHarness.Wait(worker, TimeSpan.FromSeconds(30));
        Assert.Equal(2, code);
        Assert.Contains("error: worker: binding 0.0.0.0, which is not a loopback address, needs a shared token", output);

        var coordinator = _cluster.Coordinator("http://0.0.0.0:0", _cluster.WriteConfig(), _cluster.File("x.safetensors"));
        (code, output) = ProcessHarness.Wait(coordinator, TimeSpan.FromSeconds(30));
        Assert.Equal(2, code);
        Assert.Contains("error: coordinator: binding 0.0.0.0, which is not a loopback address, needs a shared token", output);
    }

    /// <summary>One Status call with the given `authorization` and session headers (none when null).</summary>
    internal static StatusCode CallStatus(int port, string? authorization, string? session = null)
    {
        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}");
        var client = new Protos.Worker.WorkerClient(channel);
        var headers = new Metadata();
        if (authorization is not null) headers.Add("authorization", authorization);
        if (session is not null) headers.Add(Protos.Security.SessionSecret.Header, session);
        try
        {
            client.Status(new StatusRequest { ProtocolVersion = Protocol.Version }, headers, DateTime.UtcNow.AddSeconds(10));
            return StatusCode.OK;
        }
        catch (RpcException e)
        {
            return e.StatusCode;
        }
    }

    public void Dispose() => _cluster.Dispose();
}
