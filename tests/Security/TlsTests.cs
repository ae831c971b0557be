// Optional TLS on real processes: a coordinator serving TLS with client certificates required refuses plaintext
// clients, clients that do not trust its CA, clients without a certificate and clients whose certificate another
// CA issued; a worker configured with the deployment's CA and certificate trains to local mode's weights over TLS,
// its steps over a TLS step link.
using DistTrain.Protos;
using DistTrain.Protos.Security;
using DistTrain.Tests.Distributed;
using Grpc.Core;
using Grpc.Net.Client;

namespace DistTrain.Tests.Security;

public sealed class TlsTests : IDisposable
{
    private readonly SecureCluster _cluster = new();

    [Fact]
    public void TlsCoordinatorRefusesPlaintextAndUntrustedClientsAndTrainsWithATrustedWorker()
    {
        using var authority = new TestCertificates(_cluster.Dir, "deployment-ca");
        using var impostor = new TestCertificates(_cluster.Dir, "other-ca");
        var (coordinatorCert, coordinatorKey) = authority.Issue("coordinator");
        var (workerCert, workerKey) = authority.Issue("worker");
        var (strangerCert, strangerKey) = impostor.Issue("stranger");
        string token = SecureCluster.NewToken(), config = _cluster.WriteConfig();
        int port = ProcessHarness.FreePort();
        string url = $"https://127.0.0.1:{port}", save = _cluster.File("tls.safetensors");
        Dictionary<string, string> Node(string cert, string key) => new()
        {
            ["DISTTRAIN_TOKEN"] = token, ["DISTTRAIN_TLS_CERT"] = cert, ["DISTTRAIN_TLS_KEY"] = key,
            ["DISTTRAIN_TLS_CA"] = authority.CaPath, ["DISTTRAIN_TLS_MUTUAL"] = "true",
        };
        var coordinator = _cluster.Coordinator(url, config, save, Node(coordinatorCert, coordinatorKey));
        ProcessHarness.WaitForPort(port);

        // Every one of these carries the right token: what refuses them is TLS alone.
        Assert.NotEqual(StatusCode.OK, Heartbeat($"http://127.0.0.1:{port}", token, ca: null, cert: null, key: null));
        Assert.NotEqual(StatusCode.OK, Heartbeat(url, token, ca: null, cert: workerCert, key: workerKey));
        Assert.NotEqual(StatusCode.OK, Heartbeat(url, token, authority.CaPath, cert: null, key: null));
        Assert.NotEqual(StatusCode.OK, Heartbeat(url, token, authority.CaPath, strangerCert, strangerKey));
        Assert.Equal(StatusCode.OK, Heartbeat(url, token, authority.CaPath, workerCert, workerKey));

        // A worker without TLS settings cannot register (it cannot verify the coordinator) and gives up.
        var plain = _cluster.Worker("plain-worker", url, new Dictionary<string, string> { ["DISTTRAIN_TOKEN"] = token },
            "--register-timeout", "3");
        var (plainCode, plainOutput) = ProcessHarness.Wait(plain, TimeSpan.FromSeconds(60));
        Assert.True(plainCode == 1, plainOutput);

        // Off the shared memory, as on another machine: its steps go over the TCP step link, in TLS as well.
        var (_, workerOutput) = _cluster.Worker("tls-worker", url, Node(workerCert, workerKey), "--shared-memory", "false");
        var (code, output) = ProcessHarness.Wait(coordinator, SecureCluster.RunTimeout);
        Assert.True(code == 0, _cluster.AllOutput());
        Assert.Contains("registered from https://127.0.0.1:", output);
        Assert.Contains("steps over the TCP step link to 127.0.0.1:", workerOutput.ToString());
        Assert.Contains("(TLS)", workerOutput.ToString());
        Assert.Equal(_cluster.TrainLocal(config), File.ReadAllBytes(save));
        _cluster.AssertNeverLogged(token);
    }

    /// <summary>A Heartbeat through a client with the given TLS material; the status it ends with.</summary>
    private static StatusCode Heartbeat(string url, string token, string? ca, string? cert, string? key)
    {
        var options = SecurityOptions.Read(_ => null, name => name switch
        {
            SecurityOptions.TokenVariable => token,
            SecurityOptions.TlsCaVariable => ca,
            SecurityOptions.TlsCertVariable => cert,
            SecurityOptions.TlsKeyVariable => key,
            SecurityOptions.TlsMutualVariable => (cert is not null && ca is not null).ToString(),
            _ => null,
        });
        var security = NodeSecurity.Create(options, "127.0.0.1", "test client", _ => { });
        using var channel = GrpcChannel.ForAddress(url, new GrpcChannelOptions { HttpHandler = security.CreateClientHandler() });
        try
        {
            new Protos.Coordinator.CoordinatorClient(channel).Heartbeat(
                new HeartbeatRequest { ProtocolVersion = Protocol.Version, WorkerId = "w9" }, deadline: DateTime.UtcNow.AddSeconds(10));
            return StatusCode.OK;
        }
        catch (RpcException e)
        {
            return e.StatusCode;
        }
    }

    public void Dispose() => _cluster.Dispose();
}
