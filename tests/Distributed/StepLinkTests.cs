// The same-host step link on its own: only a peer with the coordinator's nonce and an offered worker id gets a link;
// requests are validated by the worker exactly as over gRPC; a call fails at its deadline, and every pending call
// fails as Unavailable the moment the worker's end closes, so its blocks can move to another worker at once.
using System.Net.Sockets;
using System.Text.Json;
using DistTrain.Coordinator.Distributed;
using DistTrain.Core.Data;
using DistTrain.Core.Model;
using DistTrain.Core.Training;
using DistTrain.Protos;
using DistTrain.Worker;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;

namespace DistTrain.Tests.Distributed;

public sealed class StepLinkTests : IDisposable
{
    private static readonly DataSpec Data = new() { Format = "blobs", Samples = 200, Classes = 3, Features = 2, Seed = 3 };
    private static readonly ModelSpec Model = new()
    {
        Inputs = 2, Layers = [new() { Type = "linear", Units = 8 }, new() { Type = "relu" }, new() { Type = "linear", Units = 3 }],
    };
    private readonly string _root = Directory.CreateTempSubdirectory("disttrain-link-test-").FullName;
    private readonly SharedMemoryHost _host;
    private readonly WorkerSession _session;

    public StepLinkTests()
    {
        _host = SharedMemoryHost.Create(_root, new Network(Model).ParameterCount, slotCount: 4, _ => { }, bindCpus: false);
        var options = new WorkerOptions { Coordinator = "http://127.0.0.1:1", Threads = 1, SharedMemoryDir = _root };
        _session = new WorkerSession(options, new DatasetStore(options, NullLogger<DatasetStore>.Instance), NullLogger<WorkerSession>.Instance);
    }

    private async Task<StepLink> ConnectAsync()
    {
        var reply = await _session.PrepareAsync(new PrepareRequest
        {
            ProtocolVersion = Protocol.Version, ModelSpecJson = JsonSerializer.Serialize(Model, TrainingConfig.Json),
            DataSpecJson = JsonSerializer.Serialize(Data, TrainingConfig.Json),
            DatasetFingerprint = Fingerprint.Compute(DataLoader.Load(Data)), MaxRequestBytes = 1 << 20, WorkerId = "w1",
            SharedMemory = _host.ForWorker("w1", 1).Offer,
        }, default);
        Assert.True(reply.StepLink, reply.SharedMemoryNote);
        return _host.LinkOf("w1") ?? throw new InvalidOperationException("the coordinator has no link for w1");
    }

    private static ComputeRequest Request(long step, int[] indices) => new()
    {
        ProtocolVersion = Protocol.Version, Step = step, WeightsVersion = step, BatchSize = indices.Length,
        ShardSize = indices.Length, SharedMemory = new SharedStep(),
        Blocks = { new BlockRange { FirstShard = 0, ShardCount = 1, SampleIndices = WireArrays.Copy(indices), SharedSlot = 0 } },
    };

    [Fact]
    public async Task StepsComputeOverTheLinkAndBadRequestsAreRefusedAsOverGrpc()
    {
        var link = await ConnectAsync();
        var weights = new Network(Model).CreateParameters(1);
        _host.Weights.Write(0, weights);
        var reply = await link.ComputeAsync(Request(0, [3, 1, 4, 1, 5]), DateTime.UtcNow.AddSeconds(30), default);
        Assert.Equal(0, reply.Step);
        Assert.Equal(BlockResult.SumOneofCase.InSharedSlot, reply.Blocks[0].SumCase);
        Assert.Equal([5], reply.Blocks[0].ShardSamples);

        var outside = await Assert.ThrowsAsync<RpcException>(() => link.ComputeAsync(Request(0, [3, 1, 400]), DateTime.UtcNow.AddSeconds(30), default));
        Assert.Equal(StatusCode.InvalidArgument, outside.StatusCode);
        Assert.Contains("sample index 400", outside.Status.Detail);
        var stale = await Assert.ThrowsAsync<RpcException>(() => link.ComputeAsync(Request(7, [3]), DateTime.UtcNow.AddSeconds(30), default));
        Assert.Equal(StatusCode.Aborted, stale.StatusCode);
        // The link still serves after refusals.
        Assert.Equal(0, (await link.ComputeAsync(Request(0, [2]), DateTime.UtcNow.AddSeconds(30), default)).Step);
    }

    /// <summary>Connects as worker w1 with the right nonce but never answers a request.</summary>
    private Socket SilentWorker()
    {
        var offer = _host.ForWorker("w1", 1).Offer;
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Connect(new UnixDomainSocketEndPoint(_host.StepSocketPath));
        socket.ReceiveTimeout = 20_000;
        StepFrames.Write(socket, 0, StepFrames.Hello, [.. offer.Nonce.ToByteArray(), .. "w1"u8.ToArray()]);
        var buffer = new byte[16];
        Assert.True(StepFrames.Read(socket, ref buffer, buffer.Length, out _, out byte kind, out _));
        Assert.Equal(StepFrames.Hello, kind);
        return socket;
    }

    [Fact]
    public async Task CallsFailAtTheirDeadlineAndAllAtOnceWhenTheWorkerGoes()
    {
        using var worker = SilentWorker();
        var link = _host.LinkOf("w1") ?? throw new InvalidOperationException("no link for w1");
        var expired = await Assert.ThrowsAsync<RpcException>(() => link.ComputeAsync(Request(0, [1]), DateTime.UtcNow.AddSeconds(-1), default));
        Assert.Equal(StatusCode.DeadlineExceeded, expired.StatusCode);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var late = await Assert.ThrowsAsync<RpcException>(() => link.ComputeAsync(Request(0, [1]), DateTime.UtcNow.AddMilliseconds(300), default));
        Assert.Equal(StatusCode.DeadlineExceeded, late.StatusCode);
        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(250), $"failed after {clock.Elapsed}, before its deadline");
        using (var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100)))
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => link.ComputeAsync(Request(0, [1]), DateTime.UtcNow.AddSeconds(30), cancel.Token));

        // The worker's end closes (as when its process dies): a waiting call fails now, not at its 30 s deadline.
        var pending = link.ComputeAsync(Request(0, [1]), DateTime.UtcNow.AddSeconds(30), default);
        clock.Restart();
        worker.Shutdown(SocketShutdown.Both);
        worker.Close();
        var gone = await Assert.ThrowsAsync<RpcException>(() => pending);
        Assert.Equal(StatusCode.Unavailable, gone.StatusCode);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed}");
        Assert.False(link.IsOpen);
        Assert.Null(_host.LinkOf("w1"));
    }

    [Fact]
    public async Task TheWorkersLinkClosesWithItsSession()
    {
        var link = await ConnectAsync();
        _session.Dispose();
        var gone = await Assert.ThrowsAsync<RpcException>(() => link.ComputeAsync(Request(0, [1]), DateTime.UtcNow.AddSeconds(30), default));
        Assert.Equal(StatusCode.Unavailable, gone.StatusCode);
    }

    [Theory]
    [InlineData("nonce")]
    [InlineData("worker")]
    public void OnlyAPeerWithTheNonceAndAnOfferedIdGetsALink(string wrong)
    {
        var offer = _host.ForWorker("w1", 1).Offer;
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Connect(new UnixDomainSocketEndPoint(_host.StepSocketPath));
        socket.ReceiveTimeout = 20_000;
        var nonce = wrong == "nonce" ? new byte[MappedFile.NonceBytes] : offer.Nonce.ToByteArray();
        var id = System.Text.Encoding.UTF8.GetBytes(wrong == "worker" ? "w9" : "w1");
        StepFrames.Write(socket, 0, StepFrames.Hello, [.. nonce, .. id]);
        var buffer = new byte[16];
        // Refused: the coordinator closes the connection without answering.
        Assert.False(StepFrames.Read(socket, ref buffer, buffer.Length, out _, out _, out _));
        Assert.Null(_host.LinkOf("w1"));
    }

    public void Dispose()
    {
        _session.Dispose();
        _host.Dispose();
        Directory.Delete(_root, recursive: true);
    }
    [Fact]
    public async Task TheReaderWaitsOnItsWorkersCpuAndCompletesCallsUnbound()
    {
        var cpus = CpuAffinity.ProcessCpus;
        Assert.True(cpus.Count >= 2, "this test needs two CPUs");
        // A coordinator end over a socket whose worker end this test drives frame by frame.
        string path = Path.Combine(_root, "pair.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        client.Connect(new UnixDomainSocketEndPoint(path));
        using var worker = listener.Accept();
        using var link = new StepLink(client, "wx", 1 << 20);
        var buffer = new byte[1024];

        link.WaitOnCpus([cpus[1]]);
        // The binding applies from the reader's next wait: a stray reply (no such call) sends it round once.
        StepFrames.Write(worker, 999, StepFrames.Reply, new ComputeReply());
        Assert.True(Eventually(() => ReaderThreads().Contains($"{cpus[1]}")), string.Join(" ", ReaderThreads()));

        // A call completes on the reader thread, which no longer has the narrow binding there.
        var call = link.ComputeAsync(new ComputeRequest { ProtocolVersion = Protocol.Version, Step = 1 }, DateTime.UtcNow.AddSeconds(30), default);
        var seen = call.ContinueWith(_ => (Thread: File.ReadAllText($"/proc/self/task/{Gettid()}/comm").Trim(), Allowed: CpuAffinity.Allowed()),
            TaskContinuationOptions.ExecuteSynchronously);
        Assert.True(StepFrames.Read(worker, ref buffer, buffer.Length, out long id, out byte kind, out _));
        Assert.Equal(StepFrames.Request, kind);
        StepFrames.Write(worker, id, StepFrames.Reply, new ComputeReply { ProtocolVersion = Protocol.Version, Step = 1 });
        var (thread, allowed) = await seen;
        Assert.Equal("disttrain-link-", thread);
        Assert.Equal(cpus, allowed);
        Assert.Equal(1, (await call).Step);

        link.WaitOnCpus([]);
        StepFrames.Write(worker, 999, StepFrames.Reply, new ComputeReply());
        Assert.True(Eventually(() => !ReaderThreads().Contains($"{cpus[1]}")), string.Join(" ", ReaderThreads()));
    }

    private static bool Eventually(Func<bool> condition)
    {
        var until = DateTime.UtcNow.AddSeconds(5);
        while (!condition())
        {
            if (DateTime.UtcNow > until) return false;
            Thread.Sleep(5);
        }
        return true;
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "gettid")]
    private static extern int Gettid();

    /// <summary>Cpus_allowed_list of this process's threads named like a coordinator link reader.</summary>
    private static IEnumerable<string> ReaderThreads() =>
        Directory.GetDirectories("/proc/self/task").Select(t =>
        {
            // A thread that ends between the listing and the read (other tests' threads come and go) is passed over.
            try
            {
                return File.ReadAllText(Path.Combine(t, "comm")).Trim() != "disttrain-link-" ? null
                    : File.ReadAllLines(Path.Combine(t, "status")).First(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal))
                        .Split(':')[1].Trim();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
        }).OfType<string>().ToList();
}
