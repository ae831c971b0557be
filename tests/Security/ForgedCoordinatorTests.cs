// A peer holding the shared token (another worker, or anyone with its token) posing as the coordinator toward a real
// worker of a real run: its Prepare with a shared-memory offer naming a foreign file, its Prepare whose data spec
// names a local path, its ComputeGradients, Status and EndRun — without the worker's session secret, or with a
// guessed one — are all refused (Unauthenticated); the foreign file is byte-for-byte unchanged and the run finishes.
using System.Text.Json;
using DistTrain.Core.Data;
using DistTrain.Core.Model;
using DistTrain.Core.Training;
using DistTrain.Protos;
using DistTrain.Protos.Security;
using DistTrain.Tests.Distributed;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace DistTrain.Tests.Security;

public sealed class ForgedCoordinatorTests : IDisposable
{
    private readonly SecureCluster _cluster = new();

    [Fact]
    public void AForgedCoordinatorWithTheTokenCannotDriveARegisteredWorker()
    {
        string token = SecureCluster.NewToken();
        var environment = new Dictionary<string, string> { ["DISTTRAIN_TOKEN"] = token };
        string configPath = _cluster.WriteConfig();
        var config = Coordinator.Cli.ConfigLoader.Load(configPath, environment: new Dictionary<string, string>());
        int coordinatorPort = ProcessHarness.FreePort(), workerPort = ProcessHarness.FreePort();
        string url = $"http://127.0.0.1:{coordinatorPort}", save = _cluster.File("run.safetensors");
        // Two workers expected: the run waits for the second while the forger works on the first.
        var coordinator = _cluster.Coordinator(url, configPath, save, environment, expectWorkers: 2);
        ProcessHarness.WaitForPort(coordinatorPort);
        var victim = _cluster.Worker("victim", url, environment, "--port", workerPort.ToString());
        SecureCluster.WaitForOutput(victim.Output, "prepared", TimeSpan.FromSeconds(60));

        byte[] nonce = Enumerable.Range(1, MappedFile.NonceBytes).Select(i => (byte)(i * 7)).ToArray();
        string target = _cluster.File("foreign-file");
        byte[] original = [.. nonce, .. Enumerable.Range(0, 1 << 16).Select(i => (byte)i)];
        File.WriteAllBytes(target, original);

        int parameters = new Network(config.Model).ParameterCount;
        var prepare = new PrepareRequest
        {
            ProtocolVersion = Protocol.Version, ModelSpecJson = JsonSerializer.Serialize(config.Model, TrainingConfig.Json),
            DataSpecJson = JsonSerializer.Serialize(config.Data, TrainingConfig.Json),
            DatasetFingerprint = Fingerprint.Compute(DataLoader.Load(config.Data)), MaxRequestBytes = 1 << 20, WorkerId = "w1",
            SharedMemory = new SharedMemoryOffer { WeightsPath = target, SlotsPath = target, Nonce = ByteString.CopyFrom(nonce), SlotCount = 4 },
        };
        var pathSpec = prepare.Clone();
        pathSpec.SharedMemory = null;
        pathSpec.DataSpecJson = """{ "format": "csv", "path": "/etc/passwd", "labelColumn": "0" }""";
        var compute = new ComputeRequest
        {
            ProtocolVersion = Protocol.Version, Step = 0, WeightsVersion = 0, BatchSize = 100, ShardSize = 25,
            Weights = ByteString.CopyFrom(new byte[4 * parameters]),
            Blocks = { new BlockRange { FirstShard = 0, ShardCount = 4, SampleIndices = ByteString.CopyFrom(Enumerable.Range(0, 100).SelectMany(BitConverter.GetBytes).ToArray()) } },
        };

        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{workerPort}");
        var worker = new Protos.Worker.WorkerClient(channel);
        string guessed = Convert.ToBase64String(new byte[SessionSecret.Bytes]);
        foreach (string? session in new[] { null, guessed, "not base64", "" })
        {
            var headers = new Metadata { { "authorization", "Bearer " + token } };
            if (session is not null) headers.Add(SessionSecret.Header, session);
            DateTime Deadline() => DateTime.UtcNow.AddSeconds(20);
            AssertUnauthenticated(() => worker.Prepare(prepare, headers, Deadline()));
            AssertUnauthenticated(() => worker.Prepare(pathSpec, headers, Deadline()));
            AssertUnauthenticated(() => worker.ComputeGradients(compute, headers, Deadline()));
            AssertUnauthenticated(() => worker.Status(new StatusRequest { ProtocolVersion = Protocol.Version }, headers, Deadline()));
            AssertUnauthenticated(() => worker.EndRun(new EndRunRequest
            {
                ProtocolVersion = Protocol.Version, CoordinatorRun = "anything",
                End = new RunEnd { Outcome = Protos.RunOutcome.Failed, Detail = "forged" },
            }, headers, Deadline()));
        }

        _cluster.Worker("second", url, environment);
        var (code, _) = ProcessHarness.Wait(coordinator, SecureCluster.RunTimeout);
        Assert.True(code == 0, _cluster.AllOutput());
        Assert.Equal(_cluster.TrainLocal(configPath), File.ReadAllBytes(save));
        Assert.Equal(original, File.ReadAllBytes(target));
        string log = ProcessHarness.Text(victim.Output);
        Assert.Contains("Prepare refused: Unauthenticated", log);
        Assert.Contains("ComputeGradients refused: Unauthenticated", log);
        Assert.DoesNotContain("root:", log);
        Assert.DoesNotContain(target, log);
        _cluster.AssertNeverLogged(token);
    }

    private static void AssertUnauthenticated(Action call)
    {
        var e = Assert.Throws<RpcException>(call);
        Assert.Equal(StatusCode.Unauthenticated, e.StatusCode);
    }

    public void Dispose() => _cluster.Dispose();
}
