// Fuzzing both servers as real processes: 10,000 damaged gRPC requests to each (most with the right token, so they
// reach the message parser and the services' validation; some without) plus thousands of raw HTTP/2 frames. Both
// must keep serving (EndRun included: it ends nothing here): afterwards the fuzzed worker answers valid Prepare/Compute/Status calls correctly and the
// fuzzed coordinator registers a real worker and trains to local mode's weights.
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using DistTrain.Core.Data;
using DistTrain.Core.Model;
using DistTrain.Core.Training;
using DistTrain.Protos;
using DistTrain.Tests.Distributed;
using Google.Protobuf;
using Grpc.Net.Client;

namespace DistTrain.Tests.Security;

public sealed class ProtocolFuzzTests : IDisposable
{
    private const int MessagesPerServer = 10_000, FrameConnectionsPerServer = 600, Concurrency = 16;
    private readonly SecureCluster _cluster = new();

    [Fact]
    public async Task BothServersSurviveMutatedRequestsAndRawFramesThenServeCorrectly()
    {
        var clock = Stopwatch.StartNew();
        string token = SecureCluster.NewToken();
        var environment = new Dictionary<string, string> { ["DISTTRAIN_TOKEN"] = token };
        string configPath = _cluster.WriteConfig();
        var config = Coordinator.Cli.ConfigLoader.Load(configPath, environment: new Dictionary<string, string>());
        int coordinatorPort = ProcessHarness.FreePort(), workerPort = ProcessHarness.FreePort();
        string save = _cluster.File("fuzzed.safetensors");
        var coordinator = _cluster.Coordinator($"http://127.0.0.1:{coordinatorPort}", configPath, save, environment);
        // This worker registers with a stand-in that keeps its session secret: it serves only the fuzzer (which sends
        // the secret with most requests, so they reach the services) and the checks after it.
        await using var standIn = await RecordingCoordinator.StartAsync(token);
        var target = _cluster.Worker("fuzzed-worker", standIn.Url, environment, "--port", workerPort.ToString());
        ProcessHarness.WaitForPort(coordinatorPort);
        ProcessHarness.WaitForPort(workerPort);
        string session = await standIn.SecretAsync(TimeSpan.FromSeconds(60));

        var valid = ValidRequests(config);
        var statuses = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
        var (coordinatorSent, workerSent, frames) = await FuzzAsync(coordinatorPort, workerPort, token, session, valid, statuses);
        Assert.True(coordinatorSent >= MessagesPerServer && workerSent >= MessagesPerServer, $"{coordinatorSent}, {workerSent}");
        // The mutants reached every layer: the token check, gRPC's framing and size limit, the services' validation.
        string seen = string.Join(", ", statuses.OrderBy(s => s.Key).Select(s => $"{s.Key}: {s.Value}"));
        foreach (var expected in new[] { "0", "3", "8", "9", "16" }) Assert.True(statuses.ContainsKey(expected), seen);
        Assert.False(coordinator.Process.HasExited, _cluster.AllOutput());
        Assert.False(target.Process.HasExited, _cluster.AllOutput());

        AssertWorkerServesCorrectly(workerPort, token, session, valid);
        _cluster.Worker("real-worker", $"http://127.0.0.1:{coordinatorPort}", environment);
        var (code, _) = ProcessHarness.Wait(coordinator, SecureCluster.RunTimeout);
        Assert.True(code == 0, _cluster.AllOutput());
        Assert.Equal(_cluster.TrainLocal(configPath), File.ReadAllBytes(save));
        _cluster.AssertNeverLogged(token);
        // About 20 s alone on 2 cores; the bound only catches a hang when the whole suite shares the cores.
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(180), $"took {clock.Elapsed.TotalSeconds:F0}s ({frames} raw frames)");
    }

    private sealed record ValidSet(int ParameterCount, string Fingerprint, PrepareRequest Prepare, ComputeRequest Compute,
        IReadOnlyList<(string Path, byte[] Message)> Coordinator, IReadOnlyList<(string Path, byte[] Message)> Worker);

    private static ValidSet ValidRequests(TrainingConfig config)
    {
        var data = DataLoader.Load(config.Data);
        int parameters = new Network(config.Model).ParameterCount;
        var prepare = new PrepareRequest
        {
            ProtocolVersion = Protocol.Version, ModelSpecJson = JsonSerializer.Serialize(config.Model, TrainingConfig.Json),
            DataSpecJson = JsonSerializer.Serialize(config.Data, TrainingConfig.Json), DatasetFingerprint = Fingerprint.Compute(data),
            MaxRequestBytes = 1 << 20, WorkerId = "w1",
        };
        var compute = new ComputeRequest
        {
            ProtocolVersion = Protocol.Version, Step = 0, WeightsVersion = 0, BatchSize = 100, ShardSize = 25,
            Weights = ByteString.CopyFrom(new byte[4 * parameters]),
            Blocks = { new BlockRange { FirstShard = 0, ShardCount = 4, SampleIndices = ByteString.CopyFrom(Enumerable.Range(0, 100).SelectMany(BitConverter.GetBytes).ToArray()) } },
        };
        var chunk = new DatasetChunk { ProtocolVersion = Protocol.Version, DatasetFingerprint = "abc", TotalBytes = 8, Offset = 0, Data = ByteString.CopyFrom(new byte[8]) };
        return new ValidSet(parameters, prepare.DatasetFingerprint, prepare, compute,
        [
            // An empty address never validates, so no mutant can make the coordinator call a host outside loopback.
            ("/disttrain.v1.Coordinator/Register", new RegisterRequest { ProtocolVersion = Protocol.Version, Address = "", Cores = 2 }.ToByteArray()),
            ("/disttrain.v1.Coordinator/Heartbeat", new HeartbeatRequest { ProtocolVersion = Protocol.Version, WorkerId = "w1" }.ToByteArray()),
            // A ticket no request holds: mutants of it must never get weights nor disturb the run.
            ("/disttrain.v1.Coordinator/FetchWeights", new FetchWeightsRequest
            {
                ProtocolVersion = Protocol.Version, Step = 0, Ticket = ByteString.CopyFrom(new byte[16]),
            }.ToByteArray()),
            ("/disttrain.v1.Worker/Status", new StatusRequest { ProtocolVersion = Protocol.Version }.ToByteArray()),
        ],
        [
            ("/disttrain.v1.Worker/Prepare", prepare.ToByteArray()),
            ("/disttrain.v1.Worker/ComputeGradients", compute.ToByteArray()),
            ("/disttrain.v1.Worker/Status", new StatusRequest { ProtocolVersion = Protocol.Version }.ToByteArray()),
            ("/disttrain.v1.Worker/ReceiveDataset", chunk.ToByteArray()),
            // Another run than the one the fuzzed worker serves, so no mutant can end it; each is refused, or found malformed, at the edge.
            ("/disttrain.v1.Worker/EndRun", new EndRunRequest
            {
                ProtocolVersion = Protocol.Version, CoordinatorRun = "0123456789abcdef",
                End = new RunEnd { Outcome = Protos.RunOutcome.Finished, Detail = "fuzz" },
            }.ToByteArray()),
            ("/disttrain.v1.Coordinator/Register", new RegisterRequest { ProtocolVersion = Protocol.Version, Address = "", Cores = 2 }.ToByteArray()),
        ]);
    }

    private static async Task<(int Coordinator, int Worker, int Frames)> FuzzAsync(int coordinatorPort, int workerPort, string token,
        string session, ValidSet valid, System.Collections.Concurrent.ConcurrentDictionary<string, int> statuses)
    {
        using var http = new HttpClient(new SocketsHttpHandler { EnableMultipleHttp2Connections = true }) { Timeout = TimeSpan.FromSeconds(20) };
        int coordinatorSent = 0, workerSent = 0;
        async Task Lane(int lane)
        {
            var rng = new DeterministicRandom((ulong)(7000 + lane));
            for (int i = 0; i < MessagesPerServer / Concurrency; i++)
            {
                statuses.AddOrUpdate(await SendAsync(http, coordinatorPort, valid.Coordinator, token, rng), 1, (_, n) => n + 1);
                Interlocked.Increment(ref coordinatorSent);
                statuses.AddOrUpdate(await SendAsync(http, workerPort, valid.Worker, token, rng, session), 1, (_, n) => n + 1);
                Interlocked.Increment(ref workerSent);
            }
        }
        var frames = Task.WhenAll(
            Http2FrameFuzzer.RunAsync(coordinatorPort, FrameConnectionsPerServer, new DeterministicRandom(11)),
            Http2FrameFuzzer.RunAsync(workerPort, FrameConnectionsPerServer, new DeterministicRandom(12)));
        await Task.WhenAll(Enumerable.Range(0, Concurrency).Select(Lane));
        return (coordinatorSent, workerSent, (await frames).Sum());
    }

    /// <summary>One request: a damaged message (sometimes the honest one) in a possibly dishonest frame; returns grpc-status.</summary>
    private static async Task<string> SendAsync(HttpClient http, int port, IReadOnlyList<(string Path, byte[] Message)> choices, string token,
        DeterministicRandom rng, string? session = null)
    {
        var (path, message) = choices[rng.NextInt(choices.Count)];
        byte[] body = rng.NextInt(20) == 0 ? WireMutator.Honest(message) : WireMutator.Frame(WireMutator.MutateMessage(message, rng), rng);
        using var request = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{port}{path}")
        {
            Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact, Content = new ByteArrayContent(body),
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
        request.Headers.TryAddWithoutValidation("te", "trailers");
        int auth = rng.NextInt(20);
        if (auth > 1) request.Headers.TryAddWithoutValidation("authorization", "Bearer " + token);
        else if (auth == 1) request.Headers.TryAddWithoutValidation("authorization", "Bearer " + token[..^2]);
        if (session is not null && rng.NextInt(20) > 0) request.Headers.TryAddWithoutValidation(Protos.Security.SessionSecret.Header, session);
        try
        {
            using var response = await http.SendAsync(request);
            await response.Content.ReadAsByteArrayAsync();
            return (response.TrailingHeaders.TryGetValues("grpc-status", out var trailer) ? trailer
                : response.Headers.TryGetValues("grpc-status", out var header) ? header : ["none"]).First();
        }
        // A reset stream is a fine answer to a lying frame; the server going away is caught by the checks after.
        catch (HttpRequestException) { return "reset"; }
    }

    private static void AssertWorkerServesCorrectly(int port, string token, string session, ValidSet valid)
    {
        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}");
        var client = new Protos.Worker.WorkerClient(channel);
        var headers = new Grpc.Core.Metadata { { "authorization", "Bearer " + token }, { Protos.Security.SessionSecret.Header, session } };
        DateTime Deadline() => DateTime.UtcNow.AddSeconds(30);
        var prepared = client.Prepare(valid.Prepare, headers, Deadline());
        Assert.True(prepared.DataPresent);
        Assert.Equal(valid.ParameterCount, prepared.ParameterCount);
        var computed = client.ComputeGradients(valid.Compute, headers, Deadline());
        var block = Assert.Single(computed.Blocks);
        Assert.Equal(4 * valid.ParameterCount, block.GradientSum.Length);
        Assert.Equal(100, block.ShardSamples.Sum());
        var status = client.Status(new StatusRequest { ProtocolVersion = Protocol.Version }, headers, Deadline());
        Assert.True(status.Prepared);
        Assert.Equal(valid.Fingerprint, status.DatasetFingerprint);
    }

    public void Dispose() => _cluster.Dispose();
}
