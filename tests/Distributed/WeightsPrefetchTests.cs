// Fetching the next step's weights early: every fetch-mode request carries a ticket for the weights of the step after
// it, and FetchWeights with that ticket waits until that step's requests go out, then answers with its weights. Run by
// the real control plane and StepTransport with in-memory workers whose client fetches as a gRPC worker does.
using System.Runtime.InteropServices;
using System.Text.Json;
using DistTrain.Coordinator.Distributed;
using DistTrain.Core.Data;
using DistTrain.Core.Model;
using DistTrain.Core.Training;
using DistTrain.Protos;
using DistTrain.Worker;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;

namespace DistTrain.Tests.Distributed;

public class WeightsPrefetchTests
{
    private static readonly DataSpec Data = new() { Format = "blobs", Samples = 300, Classes = 3, Features = 2, Seed = 5 };
    private static readonly ModelSpec Model = new()
    {
        Inputs = 2, Layers = [new() { Type = "linear", Units = 9 }, new() { Type = "tanh" }, new() { Type = "linear", Units = 3 }],
    };

    /// <summary>
    /// A gRPC worker's fetching in front of a real session: the weights come from the transport with the request's
    /// ticket, or from the early fetch issued with the previous request's next-step ticket.
    /// </summary>
    private sealed class FetchingClient(WorkerSession session, Func<StepTransport> transport) : IWorkerClient
    {
        private (long Step, Task<ByteString?> Weights)? _next;
        /// <summary>Per step: whether its weights came from the early fetch, and whether that fetch was still waiting when the step before replied.</summary>
        public List<(long Step, bool Early, bool WaitedForItsStep)> Steps { get; } = [];
        public List<byte[]> Weights { get; } = [];
        public List<byte[]> NextTickets { get; } = [];
        private bool _waited;

        public Task<PrepareReply> PrepareAsync(PrepareRequest request, DateTime deadline, CancellationToken ct) => session.PrepareAsync(request, ct);
        public Task<ReceiveDatasetReply> SendDatasetAsync(string fingerprint, ReadOnlyMemory<byte> payload, DateTime deadline, CancellationToken ct) =>
            throw new NotSupportedException();

        public async Task<ComputeReply> ComputeAsync(ComputeRequest request, DateTime deadline, CancellationToken ct)
        {
            Assert.True(request.Weights.IsEmpty);
            Assert.Equal(StepTransport.TicketBytes, request.WeightsTicket.Length);
            Assert.Equal(StepTransport.TicketBytes, request.NextWeightsTicket.Length);
            ByteString? weights = null;
            bool early = false;
            if (_next is { } next && next.Step == request.Step)
            {
                weights = await next.Weights;
                early = weights is not null;
            }
            var ahead = transport().WeightsForAsync(request.Step + 1, request.NextWeightsTicket.Memory, ct).AsTask();
            weights ??= await transport().WeightsForAsync(request.Step, request.WeightsTicket.Memory, ct)
                ?? throw new InvalidOperationException($"no weights for step {request.Step}");
            var copy = request.Clone();
            copy.Weights = ByteString.CopyFrom(weights.Span); // the oneof: no ticket any more
            copy.NextWeightsTicket = ByteString.Empty;
            lock (Steps)
            {
                Steps.Add((request.Step, early, _waited));
                Weights.Add(copy.Weights.ToByteArray());
                NextTickets.Add(request.NextWeightsTicket.ToByteArray());
            }
            var reply = await session.ComputeAsync(copy, ct);
            // The next step has not begun while this one is unanswered: its weights cannot be there yet.
            _waited = !ahead.IsCompleted;
            _next = (request.Step + 1, ahead);
            return reply;
        }

        /// <summary>The early fetch still open after the last step.</summary>
        public Task<ByteString?>? Pending => _next?.Weights;

        public void Dispose() { }
    }

    private static async Task<(ControlPlane Cluster, List<FetchingClient> Clients, List<WorkerSession> Sessions, Network Network, DataSplit Split)> StartAsync(int workers)
    {
        var split = DataLoader.Load(Data);
        var network = new Network(Model);
        var cluster = new ControlPlane(network.ParameterCount, null, weightsTransfer: WeightsTransfer.Fetch);
        var clients = new List<FetchingClient>();
        var sessions = new List<WorkerSession>();
        for (int i = 0; i < workers; i++)
        {
            var options = new WorkerOptions { Coordinator = "http://127.0.0.1:1", Threads = 1 };
            var session = new WorkerSession(options, new DatasetStore(options, NullLogger<DatasetStore>.Instance), NullLogger<WorkerSession>.Instance);
            sessions.Add(session);
            var entry = await cluster.RegisterAsync($"http://127.0.0.{i + 1}:1");
            var prepared = await session.PrepareAsync(new PrepareRequest
            {
                ProtocolVersion = Protocol.Version, ModelSpecJson = JsonSerializer.Serialize(Model, TrainingConfig.Json),
                DataSpecJson = JsonSerializer.Serialize(Data, TrainingConfig.Json), DatasetFingerprint = Fingerprint.Compute(split),
                MaxRequestBytes = 1 << 20,
            }, default);
            Assert.True(prepared.DataPresent);
            var client = new FetchingClient(session, () => cluster.Source);
            clients.Add(client);
            cluster.Ready(entry, client);
        }
        return (cluster, clients, sessions, network, split);
    }

    [Fact]
    public async Task EachStepsWeightsAreFetchedEarlyAndAreThatStepsWeights()
    {
        var (cluster, clients, sessions, network, split) = await StartAsync(workers: 2);
        var permutation = new int[split.Train.Count];
        Sampler.EpochPermutation(2, 0, permutation.Length, permutation);
        const int Steps = 4;
        var parameters = network.CreateParameters(3);
        var expected = new List<byte[]>();
        for (int step = 0; step < Steps; step++)
        {
            // Different weights every step, as training has: a fetch answered with another step's would show.
            for (int i = 0; i < parameters.Length; i++) parameters[i] += 0.01f * (i % 7 - 3);
            expected.Add(MemoryMarshal.AsBytes(parameters.AsSpan()).ToArray());
            var request = new GradientRequest
            {
                Step = step, Parameters = parameters, BatchIndices = new ArraySegment<int>(permutation, 10 * step, 60),
                Plan = new ShardPlan(60, 10),
            };
            var local = new GradientResult(network.ParameterCount);
            using (var source = new LocalGradientSource(network, split.Train, 1)) await source.ComputeAsync(request, local, default);
            var remote = new GradientResult(network.ParameterCount);
            await cluster.Source.ComputeAsync(request, remote, default);
            Assert.Equal(local.GradientSum, remote.GradientSum);
        }
        foreach (var client in clients)
        {
            // Every step but the first got its weights early, from a fetch that had waited for its step to begin.
            Assert.Equal(Enumerable.Range(0, Steps).Select(s => ((long)s, s > 0, s > 0)), client.Steps);
            for (int s = 0; s < Steps; s++) Assert.Equal(expected[s], client.Weights[s]);
        }
        Assert.Equal((2L * (Steps - 1), 2L * Steps), cluster.Source.WeightsFetches);
        // The fetch for a step that never comes is refused as soon as the run closes, not after its wait.
        var pending = clients.Select(c => c.Pending!).ToArray();
        Assert.All(pending, p => Assert.False(p.IsCompleted));
        cluster.Source.Close();
        foreach (var p in pending) Assert.Null(await p.WaitAsync(TimeSpan.FromSeconds(5)));
        foreach (var s in sessions) s.Dispose();
    }

    [Fact]
    public async Task ANextStepTicketIsGoodOnceForItsOwnStepAndNothingElse()
    {
        var (cluster, clients, sessions, network, split) = await StartAsync(workers: 1);
        var permutation = new int[split.Train.Count];
        Sampler.EpochPermutation(2, 0, permutation.Length, permutation);
        var parameters = network.CreateParameters(3);
        var request = new GradientRequest
        {
            Step = 0, Parameters = parameters, BatchIndices = new ArraySegment<int>(permutation, 0, 40), Plan = new ShardPlan(40, 10),
        };
        await cluster.Source.ComputeAsync(request, new GradientResult(network.ParameterCount), default);
        var client = Assert.Single(clients);
        var ticket = Assert.Single(client.NextTickets);
        var transport = cluster.Source;
        // The client's early fetch holds the ticket's one use: a second use, the ticket for another step, a ticket out of
        // nothing and one of the wrong length get nothing, at once.
        Assert.Null(await transport.WeightsForAsync(1, ticket, default));
        Assert.Null(await transport.WeightsForAsync(2, ticket, default));
        Assert.Null(await transport.WeightsForAsync(1, System.Security.Cryptography.RandomNumberGenerator.GetBytes(StepTransport.TicketBytes), default));
        Assert.Null(await transport.WeightsForAsync(1, new byte[3], default));
        Assert.False(client.Pending!.IsCompleted);
        request.Step = 1;
        await cluster.Source.ComputeAsync(request, new GradientResult(network.ParameterCount), default);
        Assert.True(client.Steps[1].Early);
        foreach (var s in sessions) s.Dispose();
    }
}
