// The worker's side of the early weights fetch, against a stand-in coordinator that serves FetchWeights by ticket: a
// request's next-step ticket is presented at once and its answer serves the next step's request (whose own ticket is
// then never used), a second request of the same step does not fetch the next step again, and a Prepare drops an
// early fetch it holds (it may belong to another run, whose step numbers mean other weights).
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text.Json;
using DistTrain.Core.Data;
using DistTrain.Core.Model;
using DistTrain.Core.Training;
using DistTrain.Protos;
using DistTrain.Protos.Security;
using DistTrain.Worker;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging.Abstractions;

namespace DistTrain.Tests.Distributed;

public class WorkerEarlyFetchTests
{
    private static readonly DataSpec Data = new() { Format = "blobs", Samples = 120, Classes = 3, Features = 2, Seed = 9 };
    private static readonly ModelSpec Model = new()
    {
        Inputs = 2, Layers = [new() { Type = "linear", Units = 9 }, new() { Type = "tanh" }, new() { Type = "linear", Units = 3 }],
    };

    /// <summary>Serves FetchWeights for the tickets a test gives it, each answer held until its gate opens; records every call.</summary>
    private sealed class WeightsServer : Protos.Coordinator.CoordinatorBase, IAsyncDisposable
    {
        private readonly ConcurrentDictionary<string, (long Step, byte[] Weights, Task Gate)> _tickets = new();
        private WebApplication? _app;

        public string Url { get; private set; } = "";
        public ConcurrentQueue<string> Calls { get; } = new();

        public static async Task<WeightsServer> StartAsync()
        {
            var server = new WeightsServer();
            (server._app, server.Url) = await Infrastructure.LoopbackGrpcServer.StartAsync(server);
            return server;
        }

        public ByteString Ticket(string name, long step, float[] weights, Task? gate = null)
        {
            _tickets[name] = (step, MemoryMarshal.AsBytes(weights.AsSpan()).ToArray(), gate ?? Task.CompletedTask);
            return ByteString.CopyFromUtf8(name);
        }

        public override async Task<FetchWeightsReply> FetchWeights(FetchWeightsRequest request, ServerCallContext context)
        {
            string name = request.Ticket.ToStringUtf8();
            Calls.Enqueue(name);
            if (!_tickets.TryGetValue(name, out var served) || served.Step != request.Step)
                throw new RpcException(new Status(StatusCode.FailedPrecondition, "no such ticket"));
            await served.Gate.WaitAsync(context.CancellationToken);
            return new FetchWeightsReply { ProtocolVersion = Protocol.Version, Step = request.Step, Weights = ByteString.CopyFrom(served.Weights) };
        }

        public async ValueTask DisposeAsync()
        {
            if (_app is not null) await _app.DisposeAsync();
        }
    }

    private static PrepareRequest Prepare(string fingerprint) => new()
    {
        ProtocolVersion = Protocol.Version, ModelSpecJson = JsonSerializer.Serialize(Model, TrainingConfig.Json),
        DataSpecJson = JsonSerializer.Serialize(Data, TrainingConfig.Json), DatasetFingerprint = fingerprint, MaxRequestBytes = 1 << 20,
    };

    /// <summary>Step <paramref name="step"/> over 24 samples in shards of 6, as one block.</summary>
    private static ComputeRequest Request(long step, int seed) => new()
    {
        ProtocolVersion = Protocol.Version, Step = step, WeightsVersion = step, BatchSize = 24, ShardSize = 6,
        Blocks = { new BlockRange { FirstShard = 0, ShardCount = 4, SampleIndices = WireArrays.Copy(Enumerable.Range(seed, 24).ToArray()) } },
    };

    private static async Task WaitForCallAsync(WeightsServer server, string name)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (!server.Calls.Contains(name)) await Task.Delay(10, timeout.Token);
    }

    [Fact]
    public async Task TheNextStepsWeightsComeFromTheEarlyFetchFetchedOnceAndAPrepareDropsAHeldOne()
    {
        await using var server = await WeightsServer.StartAsync();
        var options = new WorkerOptions { Coordinator = server.Url, Threads = 1 };
        using var weights = new CoordinatorWeights(options, NodeSecurity.None);
        using var session = new WorkerSession(options, new DatasetStore(options, NullLogger<DatasetStore>.Instance),
            NullLogger<WorkerSession>.Instance, weights);
        string fingerprint = Fingerprint.Compute(DataLoader.Load(Data));
        Assert.True((await session.PrepareAsync(Prepare(fingerprint), default)).DataPresent);
        var network = new Network(Model);
        float[] w0 = network.CreateParameters(1), w1 = network.CreateParameters(2), w2 = network.CreateParameters(3);
        var step1Ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // Every call bounded: a held fetch that is wrongly waited for fails the test instead of hanging it.
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30));

        // Step 0: its own weights by ticket, and the next step's asked for at once (held by the server).
        var first = Request(0, 0);
        first.WeightsTicket = server.Ticket("t0", 0, w0);
        first.NextWeightsTicket = server.Ticket("n1", 1, w1, step1Ready.Task);
        await session.ComputeAsync(first, bound.Token);
        await WaitForCallAsync(server, "n1");
        // A second request of step 0 (a retry elsewhere and back) does not ask for step 1 again.
        var retry = Request(0, 0);
        retry.WeightsTicket = server.Ticket("t0-retry", 0, w0);
        retry.NextWeightsTicket = server.Ticket("n1-retry", 1, w1, step1Ready.Task);
        await session.ComputeAsync(retry, bound.Token);

        // Step 1 begins: the held fetch is answered, and the request's own ticket is never presented.
        step1Ready.SetResult();
        var second = Request(1, 40);
        second.WeightsTicket = server.Ticket("t1", 1, w1);
        second.NextWeightsTicket = server.Ticket("n2", 2, w2, new TaskCompletionSource().Task); // never answered
        var early = await session.ComputeAsync(second, bound.Token);
        var inline = Request(1, 40);
        inline.Weights = ByteString.CopyFrom(MemoryMarshal.AsBytes(w1.AsSpan()));
        var expected = await session.ComputeAsync(inline, bound.Token);
        Assert.Equal(expected.Blocks[0].GradientSum, early.Blocks[0].GradientSum);
        await WaitForCallAsync(server, "n2");
        // (A request asks for the next step before its own weights: t0 and n1 may arrive in either order.)
        Assert.Equal(["n1", "n2", "t0", "t0-retry"], server.Calls.Order(StringComparer.Ordinal));

        // A Prepare (as a new coordinator run sends) drops the held fetch of step 2: step 2's request uses its own ticket.
        Assert.True((await session.PrepareAsync(Prepare(fingerprint), default)).DataPresent);
        var third = Request(2, 70);
        third.WeightsTicket = server.Ticket("t2", 2, w2);
        await session.ComputeAsync(third, bound.Token);
        Assert.Equal("t2", server.Calls.Last());
    }
}
