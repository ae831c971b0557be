// The step transport run by the real control plane (machine and driver) with in-memory workers (the real
// WorkerSession behind a fake client): sums are bit-identical to local mode, malformed and non-finite blocks are
// rejected, recomputed elsewhere and counted as the worker's errors, and the worker side refuses wrong protocol
// versions, wrong fingerprints and malformed dataset streams with the documented status codes.
using System.Text.Json;
using DistTrain.Coordinator.Control;
using DistTrain.Coordinator.Dashboard;
using DistTrain.Coordinator.Distributed;
using DistTrain.Core.Data;
using DistTrain.Core.Model;
using DistTrain.Core.Training;
using DistTrain.Protos;
using DistTrain.Worker;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;

namespace DistTrain.Tests.Distributed;

public class StepTransportTests
{
    private static readonly DataSpec Data = new() { Format = "blobs", Samples = 400, Classes = 3, Features = 2, Seed = 3 };
    private static readonly ModelSpec Model = new()
    {
        Inputs = 2, Layers = [new() { Type = "linear", Units = 16 }, new() { Type = "tanh" }, new() { Type = "linear", Units = 3 }],
    };

    /// <summary>
    /// A worker behind a fake client. <paramref name="gate"/>: its requests start only once that task has completed;
    /// <paramref name="replied"/>: completed after its first reply (so another client can start after this one).
    /// </summary>
    private sealed class SessionClient(WorkerSession session, Func<ComputeReply, ComputeReply>? tamper = null,
        TimeSpan delay = default, List<ComputeRequest>? requests = null, Task? gate = null,
        TaskCompletionSource? replied = null, System.Runtime.CompilerServices.StrongBox<double>? delayed = null) : IWorkerClient
    {
        public int Calls;
        public Task<PrepareReply> PrepareAsync(PrepareRequest request, DateTime deadline, CancellationToken ct) =>
            session.PrepareAsync(request, ct);
        public Task<ReceiveDatasetReply> SendDatasetAsync(string fingerprint, ReadOnlyMemory<byte> payload, DateTime deadline, CancellationToken ct) =>
            throw new NotSupportedException();
        public async Task<ComputeReply> ComputeAsync(ComputeRequest request, DateTime deadline, CancellationToken ct)
        {
            Interlocked.Increment(ref Calls);
            if (requests is not null) lock (requests) requests.Add(request.Clone());
            var clock = System.Diagnostics.Stopwatch.StartNew();
            if (delay > TimeSpan.Zero) await Task.Delay(delay, ct);
            // How long the delay really took (a loaded machine fires timers late), for a tamper to report.
            if (delayed is not null) delayed.Value = clock.Elapsed.TotalSeconds;
            if (gate is not null) await gate.WaitAsync(ct);
            var reply = await session.ComputeAsync(request, ct);
            reply = tamper is null ? reply : tamper(reply);
            replied?.TrySetResult();
            return reply;
        }
        public void Dispose() { }
    }

    /// <summary>Steps over the same-host link (the worker computes on its link thread); replies can be tampered with.</summary>
    private sealed class LinkClient(StepLink link, Func<ComputeReply, ComputeReply>? tamper, Task? gate = null,
        TaskCompletionSource? replied = null) : IWorkerClient
    {
        public Task<PrepareReply> PrepareAsync(PrepareRequest request, DateTime deadline, CancellationToken ct) => throw new NotSupportedException();
        public Task<ReceiveDatasetReply> SendDatasetAsync(string fingerprint, ReadOnlyMemory<byte> payload, DateTime deadline, CancellationToken ct) =>
            throw new NotSupportedException();
        public async Task<ComputeReply> ComputeAsync(ComputeRequest request, DateTime deadline, CancellationToken ct)
        {
            if (gate is not null) await gate.WaitAsync(ct);
            var reply = await link.ComputeAsync(request, deadline, ct);
            reply = tamper is null ? reply : tamper(reply);
            replied?.TrySetResult();
            return reply;
        }
        public void Dispose() { }
    }

    /// <summary>The root of every test's coordinator files; each host makes its own directory under it.</summary>
    private static readonly string SharedRoot = Directory.CreateTempSubdirectory("disttrain-shm-test-").FullName;

    private static WorkerSession NewSession(string? cacheDir = null)
    {
        var options = new WorkerOptions { Coordinator = "http://127.0.0.1:1", Threads = 2, CacheDir = cacheDir, SharedMemoryDir = SharedRoot };
        return new WorkerSession(options, new DatasetStore(options, NullLogger<DatasetStore>.Instance), NullLogger<WorkerSession>.Instance);
    }

    private static PrepareRequest Prepare(string fingerprint, uint version = Protocol.Version, SharedMemoryOffer? offer = null) => new()
    {
        ProtocolVersion = version, ModelSpecJson = JsonSerializer.Serialize(Model, TrainingConfig.Json),
        DataSpecJson = JsonSerializer.Serialize(Data, TrainingConfig.Json), DatasetFingerprint = fingerprint,
        MaxRequestBytes = 1 << 20, SharedMemory = offer,
        // The id the offer's slots file was made for (a worker opens only its own).
        WorkerId = offer is null ? "" : Path.GetFileName(offer.SlotsPath)["slots-".Length..],
    };

    private static int ParameterCount => new Network(Model).ParameterCount;

    /// <summary>A coordinator's shared files in a private temporary directory, removed with the host.</summary>
    private sealed class TempShared : IDisposable
    {
        public TempShared(int slots = 16, int indexCapacity = 0) =>
            Host = SharedMemoryHost.Create(SharedRoot, ParameterCount, slots, _ => { }, bindCpus: false, indexCapacity: indexCapacity);
        public SharedMemoryHost Host { get; }
        public void Dispose() => Host.Dispose();
    }

    /// <summary>Rewrites every slot of <paramref name="slots"/> that holds a block of <paramref name="reply"/>.</summary>
    private static ComputeReply TamperSlots(ComputeReply reply, SharedSlots slots, bool stale)
    {
        foreach (var block in reply.Blocks.Where(b => b.SumCase != BlockResult.SumOneofCase.ClaimedElsewhere))
        {
            Assert.Equal(BlockResult.SumOneofCase.InSharedSlot, block.SumCase);
            for (int slot = 0; slot < slots.SlotCount; slot++)
            {
                if (!slots.TryRead(slot, reply.Step, block.FirstShard, block.ShardCount, out var sum)) continue;
                var changed = sum.ToArray();
                if (!stale) changed[1] = float.NaN;
                slots.Write(slot, stale ? reply.Step - 1 : reply.Step, block.FirstShard, block.ShardCount, changed);
            }
        }
        return reply;
    }

    private static ComputeReply Corrupt(ComputeReply reply, Func<byte[], byte[]> change)
    {
        var copy = reply.Clone();
        copy.Blocks[0].GradientSum = ByteString.CopyFrom(change(copy.Blocks[0].GradientSum.ToByteArray()));
        return copy;
    }

    private static byte[] WithNaN(byte[] bytes)
    {
        BitConverter.GetBytes(float.NaN).CopyTo(bytes, 4);
        return bytes;
    }

    private static async Task<(GradientResult Local, GradientResult Remote, List<string> Log)> RunStepAsync(
        Func<ComputeReply, ComputeReply>? tamperW1, Func<ComputeReply, ComputeReply>? tamperW2, bool bf16 = false, int shardSize = 7)
    {
        var (local, remote, log, _) = await RunStepAsync(tamperW1, tamperW2, TimeSpan.Zero, bf16: bf16, shardSize: shardSize);
        return (local, remote, log);
    }

    private static async Task<(GradientResult Local, GradientResult Remote, List<string> Log, ControlPlane Cluster)> RunStepAsync(
        Func<ComputeReply, ComputeReply>? tamperW1, Func<ComputeReply, ComputeReply>? tamperW2, TimeSpan delayW1,
        SharedMemoryHost? shared = null, bool link = false, string? lateWorker = null, List<ComputeRequest>? requests = null,
        int steps = 1, System.Runtime.CompilerServices.StrongBox<double>? delayedW1 = null, bool bf16 = false, int shardSize = 7)
    {
        // lateWorker: its requests start only after the other worker's first reply (it then finds the pool empty).
        var firstReplied = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var split = DataLoader.Load(Data);
        string fingerprint = Fingerprint.Compute(split);
        var network = new Network(Model);
        var cluster = new ControlPlane(network.ParameterCount, shared);
        var sessions = new List<WorkerSession>();
        foreach (var tamper in new[] { tamperW1, tamperW2 })
        {
            var session = NewSession();
            sessions.Add(session);
            var entry = await cluster.RegisterAsync($"http://127.0.0.{sessions.Count}:1");
            var offer = shared?.ForWorker(entry.WorkerId, 1);
            var prepareRequest = Prepare(fingerprint, offer: offer?.Offer);
            prepareRequest.WorkerId = entry.WorkerId;
            var prepared = await session.PrepareAsync(prepareRequest, default);
            Assert.True(prepared.DataPresent);
            Assert.Equal(shared is not null, prepared.SharedMemory);
            bool late = lateWorker == entry.WorkerId;
            Task? gate = late ? firstReplied.Task : null;
            var replied = lateWorker is not null && !late ? firstReplied : null;
            IWorkerClient client = new SessionClient(session, tamper, sessions.Count == 1 ? delayW1 : TimeSpan.Zero, requests, gate, replied,
                sessions.Count == 1 ? delayedW1 : null);
            if (link)
            {
                Assert.True(prepared.StepLink, prepared.SharedMemoryNote);
                client = new LinkClient(shared!.LinkOf(entry.WorkerId) ?? throw new InvalidOperationException("no link"), tamper,
                    gate, replied);
            }
            cluster.Ready(entry, client, offer?.Slots);
        }
        var permutation = new int[split.Train.Count];
        Sampler.EpochPermutation(1, 0, permutation.Length, permutation);
        var request = new GradientRequest
        {
            Step = 0, Parameters = network.CreateParameters(1), BatchIndices = new ArraySegment<int>(permutation, 0, 100),
            Plan = new ShardPlan(100, shardSize), RoundToBf16 = bf16,
        };
        var local = new GradientResult(network.ParameterCount);
        using (var source = new LocalGradientSource(network, split.Train, 1)) await source.ComputeAsync(request, local, default);
        var remote = new GradientResult(network.ParameterCount);
        // The same batch again each step (the weights too): every step's sum must equal local mode's.
        for (int step = 0; step < steps; step++)
        {
            request.Step = step;
            await cluster.Source.ComputeAsync(request, remote, default);
            if (step < steps - 1) Assert.Equal(local.GradientSum, remote.GradientSum);
        }
        foreach (var s in sessions) s.Dispose();
        return (local, remote, cluster.Log, cluster);
    }

    [Theory]
    [InlineData("waited for a core")]
    [InlineData("slow link")]
    [InlineData("claims a core 10⁶× faster")]
    public async Task SpeedCountsComputeAsCpuTimeButTransferAsWallTime(string w1Case)
    {
        // w1's request takes a second longer. When the worker reports that time as compute that used no CPU (it waited
        // for a core another process held), w1 is as fast as w2 and keeps its share; when the time was not compute
        // (a slow link), w1 is measured slower and gets fewer shards next step. A report of waiting beyond the credit
        // limit (a CPU time a millionth of the compute) is not believed at all: w1 counts at its measured round trip,
        // as slow as the slow link. (Shares under such lies, replayed on a fake clock: MeasuredScenarioTests.)
        // CPU seconds well above the in-process call's own overhead (also when other tests load the machine), and at
        // least 1/8 (the credit limit) of the whole reported compute, so only the delay decides. The wait w1 reports is
        // the delay as it really ran: on a loaded machine the timer fires late, and what w1 does not report as compute
        // counts, rightly, as transfer. Its CPU share is then kept at a quarter of what it reports, whatever the delay
        // and the real compute came to (a loaded machine stretched both past 1.6 s, under the credit limit, once).
        const double cpu = 0.2, delay = 1.0;
        var delayed = new System.Runtime.CompilerServices.StrongBox<double>();
        ComputeReply Report(ComputeReply reply, double waited, double cpuSeconds)
        {
            var copy = reply.Clone();
            bool measured = double.IsNaN(waited);
            copy.ComputeSeconds = reply.ComputeSeconds + (measured ? delayed.Value : waited);
            copy.ComputeCpuSeconds = measured ? Math.Max(cpuSeconds, copy.ComputeSeconds / 4) : cpuSeconds;
            return copy;
        }
        var (waited, w1Cpu) = w1Case switch
        {
            "waited for a core" => (double.NaN, cpu), // the measured delay, below
            "slow link" => (0.0, cpu),
            _ => (delay, (cpu + delay) * 1e-6),
        };
        var (_, _, _, cluster) = await RunStepAsync(r => Report(r, waited, w1Cpu), r => Report(r, 0, cpu), TimeSpan.FromSeconds(delay),
            delayedW1: delayed);
        double w1 = cluster.Worker("w1").SamplesPerSecond, w2 = cluster.Worker("w2").SamplesPerSecond;
        if (w1Case == "waited for a core") Assert.InRange(w1 / w2, 0.5, 2);
        else Assert.True(w1 < w2 / 3, $"w1 {w1:F0} samples/s, w2 {w2:F0} samples/s");
    }

    [Theory]
    [InlineData(-1.0)]
    [InlineData(-1e300)]
    [InlineData(double.NaN)]
    [InlineData(double.NegativeInfinity)]
    public async Task ALossThatCannotBeGenuineIsRejectedAndRecomputedElsewhere(double loss)
    {
        ComputeReply Lie(ComputeReply reply)
        {
            var copy = reply.Clone();
            copy.Blocks[0].ShardLoss[0] = loss;
            return copy;
        }
        var (local, remote, log, cluster) = await RunStepAsync(Lie, null, TimeSpan.Zero);
        Assert.Equal(local.GradientSum, remote.GradientSum);
        Assert.Equal(local.ShardLoss, remote.ShardLoss);
        Assert.Equal("w2", remote.Blocks[0].Executor);
        Assert.Contains(log, l => l.Contains("from w1") && l.Contains("rejected"));
        Assert.Equal(1, cluster.Worker("w1").Errors);
    }

    [Fact]
    public async Task SumIsBitIdenticalToLocalMode()
    {
        var (local, remote, _) = await RunStepAsync(null, null);
        Assert.Equal(local.GradientSum, remote.GradientSum);
        Assert.Equal(local.ShardLoss, remote.ShardLoss);
        Assert.Equal(100, remote.TotalSamples());
        Assert.Contains(remote.Blocks, b => b.Executor == "w1");
        Assert.Contains(remote.Blocks, b => b.Executor == "w2");
    }

    /// <summary>Every one-shard block of the reply with a bfloat16 NaN as its first value (as every worker sends when training diverges).</summary>
    private static ComputeReply NaNInOneShardBf16Blocks(ComputeReply reply)
    {
        var copy = reply.Clone();
        foreach (var block in copy.Blocks.Where(b => b.ShardCount == 1 && b.SumCase == BlockResult.SumOneofCase.GradientSum))
        {
            var bytes = block.GradientSum.ToByteArray();
            bytes[0] = 0xC0;
            bytes[1] = 0x7F;
            block.GradientSum = ByteString.CopyFrom(bytes);
        }
        return copy;
    }

    [Theory]
    [InlineData(7)] // 15 shards: two blocks of several shards, summed from their per-shard vectors on arrival
    [InlineData(50)] // 2 shards: two one-shard blocks, kept bfloat16 until the tree reads them
    public async Task OverTheBf16WireTheSumIsBitIdenticalToLocalModeAndANaNEveryWorkerSendsIsNonFinite(int shardSize)
    {
        var (local, remote, _) = await RunStepAsync(null, null, bf16: true, shardSize: shardSize);
        Assert.Equal(local.GradientSum.Select(BitConverter.SingleToInt32Bits), remote.GradientSum.Select(BitConverter.SingleToInt32Bits));
        Assert.Equal(shardSize == 50, remote.Blocks.All(b => b.ShardCount == 1));
        if (shardSize != 50) return;
        // A NaN both workers agree on is a non-finite block, which the step keeps (and the trainer skips): not a
        // malformed one, recomputed until every worker is refused.
        var (_, poisoned, log) = await RunStepAsync(NaNInOneShardBf16Blocks, NaNInOneShardBf16Blocks, bf16: true, shardSize: shardSize);
        Assert.Contains(poisoned.GradientSum, float.IsNaN);
        Assert.DoesNotContain(log, l => l.Contains("refused", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("nan")]
    [InlineData("length")]
    public async Task BadBlockIsRejectedAndRecomputedElsewhere(string fault)
    {
        Func<byte[], byte[]> change = fault == "nan" ? WithNaN : b => b[..8];
        var (local, remote, log) = await RunStepAsync(r => Corrupt(r, change), null);
        Assert.Equal(local.GradientSum, remote.GradientSum);
        Assert.Equal("w2", remote.Blocks[0].Executor);
        Assert.Contains(log, l => l.Contains("from w1") && l.Contains("rejected"));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task SharedMemorySumIsBitIdenticalToLocalModeAndLeavesTheRepliesSmall(bool link)
    {
        using var shared = new TempShared();
        var replies = new List<ComputeReply>();
        ComputeReply Record(ComputeReply reply)
        {
            lock (replies) replies.Add(reply);
            return reply;
        }
        var (local, remote, _, _) = await RunStepAsync(Record, Record, TimeSpan.Zero, shared.Host, link);
        Assert.Equal(local.GradientSum, remote.GradientSum);
        Assert.Equal(local.ShardLoss, remote.ShardLoss);
        // The two same-host workers shared one pool: each block computed by exactly one of them, the sum in its slot.
        var computed = replies.SelectMany(r => r.Blocks).Where(b => b.SumCase != BlockResult.SumOneofCase.ClaimedElsewhere).ToList();
        Assert.Equal(remote.Blocks.Select(b => (b.FirstShard, b.ShardCount)).Order(), computed.Select(b => (b.FirstShard, b.ShardCount)).Order());
        Assert.All(computed, b => Assert.Equal(BlockResult.SumOneofCase.InSharedSlot, b.SumCase));
        Assert.All(replies, r => Assert.True(r.CalculateSize() < 4 * ParameterCount, $"reply of {r.CalculateSize()} bytes"));
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public async Task CorruptOrStaleSharedSlotIsRejectedAndRecomputedElsewhere(bool stale, bool link)
    {
        using var shared = new TempShared();
        var w1Slots = shared.Host.ForWorker("w1", 1).Slots;
        // w2 starts after w1 replied, so w1 claims every block of the pool; each of its sums is spoiled in its slot.
        var (local, remote, log, _) = await RunStepAsync(r => TamperSlots(r, w1Slots, stale), null, TimeSpan.Zero, shared.Host, link,
            lateWorker: "w2");
        Assert.Equal(local.GradientSum, remote.GradientSum);
        Assert.All(remote.Blocks, b => Assert.Equal("w2", b.Executor));
        Assert.Contains(log, l => l.Contains("from w1") && l.Contains("rejected"));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task AWorkerThatStartsLateLeavesThePoolToTheOtherAndTheSumIsUnchanged(bool w1Late)
    {
        // Same-host workers claim blocks as they go: the one that starts after the other has finished finds none left.
        using var shared = new TempShared();
        var replies = new Dictionary<string, ComputeReply>();
        Func<ComputeReply, ComputeReply> Record(string worker) => reply =>
        {
            lock (replies) replies[worker] = reply;
            return reply;
        };
        var (local, remote, _, _) = await RunStepAsync(Record("w1"), Record("w2"), TimeSpan.Zero, shared.Host,
            lateWorker: w1Late ? "w1" : "w2");
        Assert.Equal(local.GradientSum, remote.GradientSum);
        string early = w1Late ? "w2" : "w1", slow = w1Late ? "w1" : "w2";
        Assert.All(remote.Blocks, b => Assert.Equal(early, b.Executor));
        Assert.All(replies[early].Blocks, b => Assert.NotEqual(BlockResult.SumOneofCase.ClaimedElsewhere, b.SumCase));
        // The step does not wait for the late member once every block is in (its request is cancelled); if it got as
        // far as the pool, it found every block claimed.
        if (replies.TryGetValue(slow, out var lateReply))
            Assert.All(lateReply.Blocks, b => Assert.True(b.SumCase == BlockResult.SumOneofCase.ClaimedElsewhere && b.ShardLoss.Count == 0));
    }

    [Fact]
    public async Task BatchIndicesTravelInTheSharedFileWhenItHasRoomForThem()
    {
        using var shared = new TempShared(indexCapacity: 100);
        var requests = new List<ComputeRequest>();
        var (local, remote, _, _) = await RunStepAsync(null, null, TimeSpan.Zero, shared.Host, requests: requests);
        Assert.Equal(local.GradientSum, remote.GradientSum);
        Assert.Equal(local.ShardLoss, remote.ShardLoss);
        Assert.Equal(2, requests.Count);
        Assert.All(requests, r => Assert.True(r.SharedMemory.Indices && r.SharedMemory.ClaimPool > 0));
        Assert.All(requests.SelectMany(r => r.Blocks), b => Assert.True(b.SampleIndices.IsEmpty));

        // Without room in the file they go in the requests, as to a worker on another host.
        using var small = new TempShared(indexCapacity: 99);
        requests.Clear();
        (local, remote, _, _) = await RunStepAsync(null, null, TimeSpan.Zero, small.Host, requests: requests);
        Assert.Equal(local.GradientSum, remote.GradientSum);
        Assert.All(requests, r => Assert.False(r.SharedMemory.Indices));
        Assert.Equal(100 * 4, requests[0].Blocks.Sum(b => b.SampleIndices.Length));
    }

    [Fact]
    public async Task WorkerUsesOnlyTheFilesItWasOffered()
    {
        using var shared = new TempShared();
        using var session = NewSession();
        string fingerprint = Fingerprint.Compute(DataLoader.Load(Data));
        var (offer, _) = shared.Host.ForWorker("w1", 1);

        // Another nonce: not the coordinator's files (as on another host or in another container).
        var forged = offer.Clone();
        forged.Nonce = ByteString.CopyFrom(new byte[MappedFile.NonceBytes]);
        var reply = await session.PrepareAsync(Prepare(fingerprint, offer: forged), default);
        Assert.False(reply.SharedMemory);
        Assert.Contains("nonce differs", reply.SharedMemoryNote);
        var missing = offer.Clone();
        missing.WeightsPath += "-missing";
        reply = await session.PrepareAsync(Prepare(fingerprint, offer: missing), default);
        Assert.False(reply.SharedMemory);
        Assert.Contains("offer refused", reply.SharedMemoryNote);

        // Not accepted: a request that says its weights are in shared memory is refused.
        var request = new ComputeRequest
        {
            ProtocolVersion = Protocol.Version, Step = 0, BatchSize = 10, ShardSize = 10, SharedMemory = new SharedStep(),
            Blocks = { new BlockRange { FirstShard = 0, ShardCount = 1, SampleIndices = WireArrays.Copy(Enumerable.Range(0, 10).ToArray()) } },
        };
        var refused = await Assert.ThrowsAsync<RpcException>(() => session.ComputeAsync(request, default));
        Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);

        // Accepted: a slot outside the file is invalid; weights of another step are not used.
        reply = await session.PrepareAsync(Prepare(fingerprint, offer: offer), default);
        Assert.True(reply.SharedMemory, reply.SharedMemoryNote);
        request.Blocks[0].SharedSlot = offer.SlotCount;
        var slot = await Assert.ThrowsAsync<RpcException>(() => session.ComputeAsync(request, default));
        Assert.Equal(StatusCode.InvalidArgument, slot.StatusCode);
        request.Blocks[0].SharedSlot = 0;
        shared.Host.Weights.Write(5, new Network(Model).CreateParameters(1));
        var stale = await Assert.ThrowsAsync<RpcException>(() => session.ComputeAsync(request, default));
        Assert.Equal(StatusCode.Aborted, stale.StatusCode);
        shared.Host.Weights.Write(0, new Network(Model).CreateParameters(1));
        var done = await session.ComputeAsync(request, default);
        Assert.Equal(BlockResult.SumOneofCase.InSharedSlot, done.Blocks[0].SumCase);
    }

    [Fact]
    public async Task WorkersClaimPoolBlocksOnceAndCheckIndicesFromTheSharedFile()
    {
        using var shared = new TempShared(indexCapacity: 40);
        using var first = NewSession();
        using var second = NewSession();
        string fingerprint = Fingerprint.Compute(DataLoader.Load(Data));
        foreach (var (session, id) in new[] { (first, "w1"), (second, "w2") })
        {
            var prepare = Prepare(fingerprint, offer: shared.Host.ForWorker(id, 1).Offer);
            prepare.WorkerId = id;
            Assert.True((await session.PrepareAsync(prepare, default)).SharedMemory);
        }
        var weights = new Network(Model).CreateParameters(1);
        var indices = Enumerable.Range(0, 40).Select(i => i * 7 % 400).ToArray();
        ComputeRequest Request(long pool) => new()
        {
            ProtocolVersion = Protocol.Version, Step = 3, WeightsVersion = 3, BatchSize = 40, ShardSize = 10,
            SharedMemory = new SharedStep { Indices = true, ClaimPool = pool },
            Blocks =
            {
                new BlockRange { FirstShard = 0, ShardCount = 2, SharedSlot = 0 },
                new BlockRange { FirstShard = 2, ShardCount = 1, SharedSlot = 1 },
                new BlockRange { FirstShard = 3, ShardCount = 1, SharedSlot = 2 },
            },
        };
        shared.Host.Weights.Write(3, weights, indices);

        // Pool 1: the first worker claims all three blocks, the second finds none left.
        shared.Host.Weights.OpenPool(1);
        var all = await first.ComputeAsync(Request(1), default);
        Assert.All(all.Blocks, b => Assert.True(b.SumCase == BlockResult.SumOneofCase.InSharedSlot && b.ShardLoss.Count == b.ShardCount));
        var none = await second.ComputeAsync(Request(1), default);
        Assert.All(none.Blocks, b => Assert.True(b.SumCase == BlockResult.SumOneofCase.ClaimedElsewhere && b.ShardLoss.Count == 0));
        // A request for a pool the counter has left (a late one) claims nothing either.
        shared.Host.Weights.OpenPool(2);
        Assert.All((await first.ComputeAsync(Request(1), default)).Blocks, b => Assert.Equal(BlockResult.SumOneofCase.ClaimedElsewhere, b.SumCase));
        // Without a pool every block is computed, from the same indices: the same per-shard losses.
        var plain = Request(0);
        var whole = await second.ComputeAsync(plain, default);
        Assert.Equal(all.Blocks.SelectMany(b => b.ShardLoss), whole.Blocks.SelectMany(b => b.ShardLoss));

        // Indices of another step are not used; indices outside the dataset are refused; a block must not carry
        // indices when the request says they are in the file, and the file must hold the whole batch.
        shared.Host.Weights.Write(3, weights, Enumerable.Repeat(400, 40).ToArray());
        var outside = await Assert.ThrowsAsync<RpcException>(() => second.ComputeAsync(plain, default));
        Assert.Equal(StatusCode.InvalidArgument, outside.StatusCode);
        Assert.Contains("sample index 400", outside.Status.Detail);
        shared.Host.Weights.Write(4, weights, indices);
        Assert.Equal(StatusCode.Aborted, (await Assert.ThrowsAsync<RpcException>(() => second.ComputeAsync(plain, default))).StatusCode);
        var carrying = plain.Clone();
        carrying.Blocks[0].SampleIndices = WireArrays.Copy(indices.AsSpan(0, 20));
        Assert.Equal(StatusCode.InvalidArgument, (await Assert.ThrowsAsync<RpcException>(() => second.ComputeAsync(carrying, default))).StatusCode);
        var tooBig = plain.Clone();
        tooBig.BatchSize = 41;
        Assert.Equal(StatusCode.InvalidArgument, (await Assert.ThrowsAsync<RpcException>(() => second.ComputeAsync(tooBig, default))).StatusCode);

    }

    [Fact]
    public async Task AWorkerFedNaNGradientsHasExactlyItsRejectedBlocksAsErrorsInTheViewMetricsAndStatus()
    {
        // Every reply of w1 carries a NaN in its first block; five steps, each equal to local mode's. After three
        // steps with a block rejected w1 is refused, and w2 computes the rest.
        const int steps = 5;
        var (local, remote, log, cluster) = await RunStepAsync(r => Corrupt(r, WithNaN), null, TimeSpan.Zero, steps: steps);
        Assert.Equal(local.GradientSum, remote.GradientSum);
        int rejected = log.Count(l => l.Contains("from w1 is non-finite; rejected", StringComparison.Ordinal));
        Assert.True(rejected == new ControlOptions().RejectedStepsLimit, string.Join("\n", log));
        Assert.Equal(WorkerState.Refused, cluster.Worker("w1").State);
        Assert.Contains(log, l => l.Contains("worker w1 (http://127.0.0.1:1) refused: its blocks were rejected in 3 consecutive steps",
            StringComparison.Ordinal));
        Assert.Equal(rejected, cluster.Worker("w1").Errors);
        Assert.Equal(0, cluster.Worker("w2").Errors);

        // The same figures on the dashboard's /api/status and /metrics: both read the published view.
        var telemetry = new TrainingTelemetry(["0"], 1, new DashboardOptions());
        var source = new ClusterStatusSource(cluster.Driver);
        var exporter = new PrometheusExporter(telemetry, source);
        await using var dashboard = await DashboardServer.TryStartAsync(new DashboardOptions { Port = 0 }, telemetry, source, exporter,
            new RunInfo("distributed", "test", 1, JsonDocument.Parse("{}").RootElement), NullLoggerFactory.Instance,
            DistTrain.Coordinator.Security.DashboardSecurity.Create("127.0.0.1", null), default);
        using var http = new HttpClient { BaseAddress = dashboard!.Address };
        var workers = JsonDocument.Parse(await http.GetStringAsync("api/status")).RootElement.GetProperty("workers").EnumerateArray()
            .ToDictionary(w => w.GetProperty("id").GetString()!, w => w.GetProperty("errors").GetInt64());
        Assert.Equal(new Dictionary<string, long> { ["w1"] = rejected, ["w2"] = 0 }, workers);
        var metrics = DistTrain.Tests.Dashboard.PrometheusTextParser.Parse(await http.GetStringAsync("metrics"))["disttrain_worker_errors_total"].Samples
            .ToDictionary(m => m.Labels["worker"], m => (long)m.Value);
        Assert.Equal(new Dictionary<string, long> { ["w1"] = rejected, ["w2"] = 0 }, metrics);
    }

    [Fact]
    public async Task NonFiniteEverywhereIsAcceptedAsGenuine()
    {
        var (_, remote, log) = await RunStepAsync(r => Corrupt(r, WithNaN), r => Corrupt(r, WithNaN));
        Assert.Contains(remote.GradientSum, float.IsNaN);
        Assert.Contains(log, l => l.Contains("accepted as genuine"));
    }

    [Fact]
    public async Task WorkerRefusesWrongProtocolVersionAndFingerprint()
    {
        using var session = NewSession();
        var fingerprint = Fingerprint.Compute(DataLoader.Load(Data));
        var version = await Assert.ThrowsAsync<RpcException>(() => session.PrepareAsync(Prepare(fingerprint, 99), default));
        Assert.Equal(StatusCode.FailedPrecondition, version.StatusCode);
        Assert.Contains("protocol version 99", version.Status.Detail);
        var compute = await Assert.ThrowsAsync<RpcException>(() => session.ComputeAsync(new ComputeRequest { ProtocolVersion = 7 }, default));
        Assert.Equal(StatusCode.FailedPrecondition, compute.StatusCode);
        var mismatch = await Assert.ThrowsAsync<RpcException>(() => session.PrepareAsync(Prepare(fingerprint + "x"), default));
        Assert.Equal(StatusCode.FailedPrecondition, mismatch.StatusCode);
        Assert.Contains("fingerprint mismatch", mismatch.Status.Detail);
        var register = Assert.Throws<RpcException>(() => new CoordinatorService(new ControlPlane(1, null).Driver, new ClusterLog(_ => { }))
            .Register(new RegisterRequest { ProtocolVersion = Protocol.Version + 1, Address = "http://127.0.0.1:5", Cores = 1 }, null!).GetAwaiter().GetResult());
        Assert.Equal(StatusCode.FailedPrecondition, register.StatusCode);
    }

    [Fact]
    public async Task AHeartbeatFromAPreviousCoordinatorRunIsNotTakenForTheWorkerNowHoldingItsId()
    {
        var cluster = new ControlPlane(1, null);
        var service = new CoordinatorService(cluster.Driver, new ClusterLog(_ => { }));
        var reply = await service.Register(new RegisterRequest { ProtocolVersion = Protocol.Version, Address = "http://127.0.0.1:5", Cores = 1, SessionSecret = Google.Protobuf.ByteString.CopyFrom(new byte[32]) }, null!);
        Assert.Equal(ControlPlane.RunId, reply.CoordinatorRun);
        var heartbeat = new HeartbeatRequest
        {
            ProtocolVersion = Protocol.Version, WorkerId = reply.WorkerId, CoordinatorRun = reply.CoordinatorRun,
            SessionSecret = Google.Protobuf.ByteString.CopyFrom(new byte[32]),
        };
        Assert.True((await service.Heartbeat(heartbeat, null!)).Known);
        // After a restart ids begin at w1 again: a worker still heartbeating with the id an earlier run gave it is told
        // to register again instead of passing for the worker that holds that id now.
        heartbeat.CoordinatorRun = "an-earlier-run";
        Assert.False((await service.Heartbeat(heartbeat, null!)).Known);
    }

    [Fact]
    public async Task UnpreparedOrMalformedComputeIsRefused()
    {
        using var session = NewSession();
        var unprepared = await Assert.ThrowsAsync<RpcException>(() => session.ComputeAsync(new ComputeRequest { ProtocolVersion = Protocol.Version }, default));
        Assert.Equal(StatusCode.FailedPrecondition, unprepared.StatusCode);
        await session.PrepareAsync(Prepare(Fingerprint.Compute(DataLoader.Load(Data))), default);
        var bad = await Assert.ThrowsAsync<RpcException>(() => session.ComputeAsync(new ComputeRequest
        {
            ProtocolVersion = Protocol.Version, Weights = ByteString.CopyFrom(new byte[12]), BatchSize = 10, ShardSize = 5,
        }, default));
        Assert.Equal(StatusCode.InvalidArgument, bad.StatusCode);
    }

    private sealed class Chunks(IEnumerable<DatasetChunk> chunks) : IAsyncStreamReader<DatasetChunk>
    {
        private readonly IEnumerator<DatasetChunk> _items = chunks.GetEnumerator();
        public DatasetChunk Current => _items.Current;
        public Task<bool> MoveNext(CancellationToken cancellationToken) => Task.FromResult(_items.MoveNext());
    }

    [Fact]
    public async Task StreamedDatasetIsVerifiedAndCached()
    {
        string cache = Path.Combine(Path.GetTempPath(), $"disttrain-test-cache-{Guid.NewGuid():N}");
        try
        {
            using var session = NewSession(cache);
            var split = DataLoader.Load(Data);
            string fingerprint = Fingerprint.Compute(split);
            var payload = DatasetCodec.Encode(split);
            var chunks = payload.Chunk(1000).Select((c, i) => new DatasetChunk
            {
                ProtocolVersion = Protocol.Version, DatasetFingerprint = i == 0 ? fingerprint : "",
                TotalBytes = i == 0 ? payload.Length : 0, Offset = i * 1000L, Data = ByteString.CopyFrom(c),
            }).ToList();
            Assert.Equal(payload.Length, await session.ReceiveDatasetAsync(new Chunks(chunks), default));
            Assert.True(File.Exists(Path.Combine(cache, $"{fingerprint}.dtds")));

            var gap = chunks.Where((_, i) => i != 1).ToList();
            var error = await Assert.ThrowsAsync<RpcException>(() => session.ReceiveDatasetAsync(new Chunks(gap), default));
            Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
            var hostile = new DatasetChunk { ProtocolVersion = Protocol.Version, DatasetFingerprint = "../../etc/passwd", TotalBytes = 10 };
            error = await Assert.ThrowsAsync<RpcException>(() => session.ReceiveDatasetAsync(new Chunks([hostile]), default));
            Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        }
        finally { try { Directory.Delete(cache, true); } catch (IOException) { } }
    }
}
