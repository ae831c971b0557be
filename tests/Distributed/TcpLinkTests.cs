// The TCP step link on its own: a worker prepared with the offer connects to the host it registered with and its
// steps (weights in the request, gradient sums in the reply) compute exactly as over gRPC; only a peer with the
// nonce offered to that worker id gets a link; a hello that is not one, too large, or never sent is refused without
// holding up other workers; a prepared worker keeps its link and reconnects when it closed; pending calls fail as
// Unavailable the moment the worker's end goes; with TLS, only a worker that trusts the coordinator connects.
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.Json;
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

public sealed class TcpLinkTests : IDisposable
{
    private static readonly DataSpec Data = new() { Format = "blobs", Samples = 200, Classes = 3, Features = 5, Seed = 3 };
    private static readonly ModelSpec Model = Mlp(37);
    /// <summary>36,003 parameters: its weights (141 KiB) go out after the request's other fields (a frame's tail).</summary>
    private static readonly ModelSpec Big = Mlp(4000);

    private static ModelSpec Mlp(int hidden) => new()
    {
        Inputs = 5, Layers = [new() { Type = "linear", Units = hidden }, new() { Type = "relu" }, new() { Type = "linear", Units = 3 }],
    };
    private readonly List<string> _refusals = [];
    private readonly TcpLinkHost _host;
    private readonly WorkerSession _session;

    public TcpLinkTests()
    {
        _host = new TcpLinkHost(new IPEndPoint(IPAddress.Loopback, 0), 1 << 20, Refused, TimeSpan.FromSeconds(10));
        var options = new WorkerOptions { Coordinator = "http://127.0.0.1:1", Threads = 1, SharedMemory = false };
        _session = new WorkerSession(options, new DatasetStore(options, NullLogger<DatasetStore>.Instance), NullLogger<WorkerSession>.Instance);
    }

    private void Refused(string message)
    {
        lock (_refusals) _refusals.Add(message);
    }

    private Task<PrepareReply> PrepareAsync(ModelSpec? model = null) =>
        _session.PrepareAsync(Prepare(model ?? Model, "w1", _host.OfferFor("w1")), default);

    /// <summary>The coordinator's Prepare for <paramref name="workerId"/> with <paramref name="model"/> on the test data.</summary>
    private static PrepareRequest Prepare(ModelSpec model, string workerId, TcpLinkOffer offer) => new()
    {
        ProtocolVersion = Protocol.Version, ModelSpecJson = JsonSerializer.Serialize(model, TrainingConfig.Json),
        DataSpecJson = JsonSerializer.Serialize(Data, TrainingConfig.Json),
        DatasetFingerprint = Fingerprint.Compute(DataLoader.Load(Data)), MaxRequestBytes = 1 << 20, WorkerId = workerId,
        TcpLink = offer,
    };

    private static ComputeRequest Request(long step, float[] weights, int[] indices) => new()
    {
        ProtocolVersion = Protocol.Version, Step = step, WeightsVersion = step, BatchSize = indices.Length, ShardSize = 3,
        Weights = ByteString.CopyFrom(MemoryMarshal.AsBytes(weights.AsSpan())),
        Blocks = { new BlockRange { FirstShard = 0, ShardCount = (indices.Length + 2) / 3, SampleIndices = WireArrays.Copy(indices) } },
    };

    [Theory]
    [InlineData(false)]
    [InlineData(true)] // weights of 141 KiB: sent after the frame, from the caller's array
    public async Task StepsComputeOverTheLinkExactlyAsOverGrpcAndBadRequestsAreRefused(bool big)
    {
        var model = big ? Big : Model;
        var reply = await PrepareAsync(model);
        Assert.True(reply.TcpLink, reply.TcpLinkNote);
        var link = _host.LinkOf("w1") ?? throw new InvalidOperationException("the coordinator has no link for w1");
        int parameters = new Network(model).ParameterCount;
        Assert.Equal(big, 4 * parameters >= 64 << 10);
        var weights = new Network(model).CreateParameters(1);
        int[] indices = [3, 1, 4, 1, 5, 9, 2, 6];
        var overLink = await link.ComputeAsync(Request(0, weights, indices), DateTime.UtcNow.AddSeconds(30), default);
        var direct = await _session.ComputeAsync(Request(0, weights, indices), default);
        Assert.Equal(0, overLink.Step);
        var block = Assert.Single(overLink.Blocks);
        Assert.Equal(4 * parameters, block.GradientSum.Length);
        Assert.Contains(MemoryMarshal.Cast<byte, float>(block.GradientSum.Span).ToArray(), g => g != 0);
        Assert.Equal(direct.Blocks[0].GradientSum.ToByteArray(), block.GradientSum.ToByteArray());
        Assert.Equal(direct.Blocks[0].ShardLoss, block.ShardLoss);
        Assert.Equal([3, 3, 2], block.ShardSamples);

        var outside = await Assert.ThrowsAsync<RpcException>(() => link.ComputeAsync(Request(0, weights, [3, 1, 400]), DateTime.UtcNow.AddSeconds(30), default));
        Assert.Equal(StatusCode.InvalidArgument, outside.StatusCode);
        Assert.Contains("sample index 400", outside.Status.Detail);
        var shortWeights = await Assert.ThrowsAsync<RpcException>(() => link.ComputeAsync(Request(0, weights[..^1], [3]), DateTime.UtcNow.AddSeconds(30), default));
        Assert.Equal(StatusCode.InvalidArgument, shortWeights.StatusCode);
        var ticketed = Request(0, weights, [3]);
        ticketed.WeightsTicket = ByteString.CopyFrom(new byte[16]);
        var ticket = await Assert.ThrowsAsync<RpcException>(() => link.ComputeAsync(ticketed, DateTime.UtcNow.AddSeconds(30), default));
        Assert.Equal(StatusCode.InvalidArgument, ticket.StatusCode);
        Assert.Contains("not a weights_ticket", ticket.Status.Detail);
        // The link still serves after refusals.
        Assert.Equal(1, (await link.ComputeAsync(Request(1, weights, [2]), DateTime.UtcNow.AddSeconds(30), default)).Step);
    }

    [Fact]
    public async Task APreparedWorkerKeepsItsLinkAndConnectsAgainWhenItClosed()
    {
        Assert.True((await PrepareAsync()).TcpLink);
        var first = _host.LinkOf("w1")!;
        Assert.True((await PrepareAsync()).TcpLink);
        Assert.Same(first, _host.LinkOf("w1"));
        // The coordinator drops the link (as when its reader failed): the next offer has a new nonce, so the next
        // Prepare connects a new link at once, whether or not the worker has seen the old one close yet.
        var nonce = _host.OfferFor("w1").Nonce;
        first.Dispose();
        Assert.Null(_host.LinkOf("w1"));
        Assert.NotEqual(nonce, _host.OfferFor("w1").Nonce);
        Assert.True((await PrepareAsync()).TcpLink);
        var second = _host.LinkOf("w1");
        Assert.NotNull(second);
        Assert.NotSame(first, second);
        var weights = new Network(Model).CreateParameters(2);
        Assert.Equal(5, (await second.ComputeAsync(Request(5, weights, [7]), DateTime.UtcNow.AddSeconds(30), default)).Step);
    }

    [Fact]
    public async Task RequestsLargerThanTheSocketTakesArriveWholeAndInOrderWhenTheWorkerReadsLate()
    {
        // Each request gives the socket what it takes at once and leaves the rest to the link's writer thread; the
        // worker reads nothing until all four are issued, so the first is cut mid-weights and the others wait behind it.
        using var worker = LinkedWorker(_host, "w1");
        var link = _host.LinkOf("w1") ?? throw new InvalidOperationException("no link for w1");
        var weights = Enumerable.Range(0, 4).Select(k =>
        {
            var bytes = new byte[(3 << 20) + k];
            new Random(k).NextBytes(bytes);
            return bytes;
        }).ToArray();
        var calls = weights.Select((w, k) => link.ComputeAsync(new ComputeRequest
        {
            ProtocolVersion = Protocol.Version, Step = k, Weights = Google.Protobuf.ByteString.CopyFrom(w),
        }, DateTime.UtcNow.AddSeconds(60), default)).ToArray();
        var buffer = new byte[1024];
        for (int k = 0; k < weights.Length; k++)
        {
            Assert.True(StepFrames.Read(worker, ref buffer, 8 << 20, out long id, out byte kind, out int length));
            Assert.Equal(StepFrames.Request, kind);
            var request = ComputeRequest.Parser.ParseFrom(buffer, 0, length);
            Assert.Equal(k, request.Step);
            Assert.True(request.Weights.Span.SequenceEqual(weights[k]), $"request {k}'s weights arrived changed");
            StepFrames.Write(worker, id, StepFrames.Reply, new ComputeReply { ProtocolVersion = Protocol.Version, Step = k });
        }
        for (int k = 0; k < calls.Length; k++) Assert.Equal(k, (await calls[k]).Step);
    }

    [Fact]
    public void ALinksConnectIsRefusedByAClosedPortAndHonoursItsDeadlineAndCancellation()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        int port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        // A port nothing listens on (taken from a socket bound and closed again) refuses.
        int closed;
        using (var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            closed = ((IPEndPoint)probe.LocalEndPoint!).Port;
        }
        var refused = Assert.Throws<SocketException>(() =>
            StepConnection.ConnectTcp([IPAddress.Loopback], closed, DateTime.UtcNow.AddSeconds(10), default));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
        using var socket = StepConnection.ConnectTcp([IPAddress.Loopback], port, DateTime.UtcNow.AddSeconds(10), default);
        Assert.NotNull(socket);
        Assert.True(socket.Connected);
        using var accepted = listener.Accept();
        Assert.Equal(socket.LocalEndPoint, accepted.RemoteEndPoint);
        // Past the deadline or cancelled, no further address is tried.
        Assert.Null(StepConnection.ConnectTcp([IPAddress.Loopback], port, DateTime.UtcNow.AddSeconds(-1), default));
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() =>
            StepConnection.ConnectTcp([IPAddress.Loopback], port, DateTime.UtcNow.AddSeconds(10), cancelled.Token));
    }

    private Socket Connect()
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = 20_000 };
        socket.Connect(IPAddress.Loopback, _host.Port);
        return socket;
    }

    /// <summary>A worker's end driven by the test: connected (from <paramref name="from"/> when given), hello said and answered.</summary>
    private static Socket LinkedWorker(TcpLinkHost host, string workerId, IPAddress? from = null)
    {
        var offer = host.OfferFor(workerId);
        var worker = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = 20_000 };
        if (from is not null) worker.Bind(new IPEndPoint(from, 0));
        worker.Connect(IPAddress.Loopback, host.Port);
        StepFrames.Write(worker, 0, StepFrames.Hello, [.. offer.Nonce.ToByteArray(), .. System.Text.Encoding.UTF8.GetBytes(workerId)]);
        var buffer = new byte[16];
        Assert.True(StepFrames.Read(worker, ref buffer, buffer.Length, out _, out byte kind, out _));
        Assert.Equal(StepFrames.Hello, kind);
        return worker;
    }

    /// <summary>True when the coordinator closed the connection without answering (after one request frame, when said).</summary>
    private static bool ClosedUnanswered(Socket socket, bool afterRequest = false)
    {
        var buffer = new byte[1024];
        try
        {
            if (afterRequest && (!StepFrames.Read(socket, ref buffer, 1 << 20, out _, out byte kind, out _) || kind != StepFrames.Request))
                return false;
            return !StepFrames.Read(socket, ref buffer, 1 << 20, out _, out _, out _);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset) { return true; }
    }

    [Theory]
    [InlineData("no nonce")]
    [InlineData("another worker's nonce")]
    [InlineData("unknown worker")]
    public void OnlyAPeerWithTheNonceOfferedToItsIdGetsALink(string wrong)
    {
        var offer = _host.OfferFor("w1");
        var other = _host.OfferFor("w2");
        Assert.NotEqual(offer.Nonce, other.Nonce);
        using var socket = Connect();
        var nonce = wrong switch
        {
            "no nonce" => new byte[TcpLinkHost.NonceBytes],
            "another worker's nonce" => other.Nonce.ToByteArray(),
            _ => offer.Nonce.ToByteArray(),
        };
        var id = System.Text.Encoding.UTF8.GetBytes(wrong == "unknown worker" ? "w9" : "w1");
        StepFrames.Write(socket, 0, StepFrames.Hello, [.. nonce, .. id]);
        Assert.True(ClosedUnanswered(socket));
        Assert.Null(_host.LinkOf("w1"));
        Assert.Null(_host.LinkOf("w9"));
        lock (_refusals) Assert.Contains(_refusals, r => r.Contains("did not carry the nonce offered to worker", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(StepFrames.Hello, 1 << 30)] // a gigabyte hello: refused from its header, nothing allocated
    [InlineData(StepFrames.Hello, TcpLinkHost.NonceBytes)] // a nonce and no worker id
    [InlineData(StepFrames.Request, 40)] // a request before any hello
    public void AFirstFrameThatIsNotAHelloOfTheRightSizeIsRefusedFromItsHeader(byte kind, int length)
    {
        _host.OfferFor("w1");
        using var socket = Connect();
        var header = new byte[StepFrames.HeaderBytes];
        BinaryPrimitives.WriteInt32LittleEndian(header, length);
        header[12] = kind;
        socket.Send(header);
        // Closed at once (the host's hello timeout is 10 s), for what the header says.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Assert.True(ClosedUnanswered(socket));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(8), $"closed after {clock.Elapsed}");
        Assert.Null(_host.LinkOf("w1"));
        lock (_refusals) Assert.Contains(_refusals, r => r.Contains("its first frame is not a hello of 17..272 bytes", StringComparison.Ordinal));
    }

    [Fact]
    public void AConnectionThatNeverSaysHelloIsClosedAtTheTimeoutWithoutHoldingUpOthers()
    {
        using var host = new TcpLinkHost(new IPEndPoint(IPAddress.Loopback, 0), 1 << 20, Refused, TimeSpan.FromSeconds(3));
        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = 20_000 };
        silent.Connect(IPAddress.Loopback, host.Port);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        // A worker connects meanwhile and gets its link while the silent connection still waits.
        using var worker = LinkedWorker(host, "w1");
        Assert.NotNull(host.LinkOf("w1"));
        lock (_refusals) Assert.DoesNotContain(_refusals, r => r.Contains("no hello within", StringComparison.Ordinal));
        // The silent one is closed at its timeout, not before.
        Assert.True(ClosedUnanswered(silent));
        Assert.True(clock.Elapsed > TimeSpan.FromSeconds(2), $"closed after {clock.Elapsed}");
        lock (_refusals) Assert.Contains(_refusals, r => r.Contains("no hello within 3 s", StringComparison.Ordinal));
    }

    [Fact]
    public async Task APrepareGivenUpWhileTheLinkWaitsForItsHelloEndsAtOnce()
    {
        // A port that accepts connections and never answers a hello.
        using var mute = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        mute.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        mute.Listen(4);
        var request = Prepare(Model, "w1",
            new TcpLinkOffer { Port = ((IPEndPoint)mute.LocalEndPoint!).Port, Nonce = ByteString.CopyFrom(new byte[TcpLinkHost.NonceBytes]) });
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => _session.PrepareAsync(request, cancel.Token));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}: the connect ignored the Prepare's cancellation");
        Assert.Null(_host.LinkOf("w1"));
    }

    [Fact]
    public void ConnectionsFloodingFromOneAddressCannotCrowdOutAWorkerFromAnother()
    {
        var silent = new List<Socket>();
        try
        {
            // Eight connections from 127.0.0.1 wait for their hello; a ninth is closed at once.
            for (int i = 0; i < 8; i++) silent.Add(Connect());
            using var ninth = Connect();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            Assert.True(ClosedUnanswered(ninth));
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(8), $"closed after {clock.Elapsed}");
            lock (_refusals) Assert.Contains(_refusals, r => r.Contains("8 connections from its address", StringComparison.Ordinal));
            // A worker from another address (127.0.0.2, also this machine's loopback) still gets its link.
            using var worker = LinkedWorker(_host, "w1", from: IPAddress.Parse("127.0.0.2"));
            Assert.NotNull(_host.LinkOf("w1"));
        }
        finally
        {
            foreach (var socket in silent) socket.Dispose();
        }
    }

    [Fact]
    public async Task AGivenUpCallClosesTheLinkAndTheWorkersStepsGoOverGrpcUntilItIsPreparedAgain()
    {
        using var worker = LinkedWorker(_host, "w1");
        var link = _host.LinkOf("w1")!;
        var logged = new List<string>();
        var grpc = new CountingClient();
        using var client = new LinkedWorkerClient(grpc, link, logged.Add);
        // The worker never answers: the call fails at its deadline, and the link closes so the worker would not
        // compute it later (nor get weights that change under the frame).
        var late = await Assert.ThrowsAsync<RpcException>(() => client.ComputeAsync(Request(0, new float[10], [1]), DateTime.UtcNow.AddMilliseconds(300), default));
        Assert.Equal(StatusCode.DeadlineExceeded, late.StatusCode);
        Assert.False(link.IsOpen);
        Assert.Null(_host.LinkOf("w1"));
        Assert.True(ClosedUnanswered(worker, afterRequest: true));
        // The next steps go as gRPC calls; that is said once.
        await client.ComputeAsync(Request(1, new float[10], [1]), DateTime.UtcNow.AddSeconds(30), default);
        await client.ComputeAsync(Request(2, new float[10], [1]), DateTime.UtcNow.AddSeconds(30), default);
        Assert.Equal(2, grpc.Calls);
        Assert.Contains("a call was given up (deadline); its steps go as gRPC calls until it is prepared again", Assert.Single(logged));
    }

    [Fact]
    public async Task AClosedLinkIsConnectedAgainInTheBackgroundAndTheStepsGoBackOverIt()
    {
        Assert.True((await PrepareAsync()).TcpLink);
        var first = _host.LinkOf("w1")!;
        var logged = new List<string>();
        var grpc = new CountingClient();
        int attempts = 0;
        var reconnected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var client = new LinkedWorkerClient(grpc, first, line =>
        {
            lock (logged) logged.Add(line);
            if (line.Contains("connected again; its steps go over it")) reconnected.TrySetResult();
        }, async token =>
        {
            // As the preparer does: the worker, prepared already, is prepared again with a fresh offer.
            Interlocked.Increment(ref attempts);
            return (await _session.PrepareAsync(Prepare(Model, "w1", _host.OfferFor("w1")), token)).TcpLink ? _host.LinkOf("w1") : null;
        });
        var weights = new Network(Model).CreateParameters(2);
        first.Dispose(); // the link closes (its reader failed, or a call was given up)
        Assert.Equal(0, (await client.ComputeAsync(Request(0, weights, [7]), DateTime.UtcNow.AddSeconds(30), default)).Step);
        Assert.Equal(1, grpc.Calls);
        await reconnected.Task.WaitAsync(TimeSpan.FromSeconds(20));
        var second = _host.LinkOf("w1");
        Assert.NotNull(second);
        Assert.NotSame(first, second);
        // Back on the link: no further gRPC call, and the step computes as before.
        Assert.Equal(1, (await client.ComputeAsync(Request(1, weights, [7]), DateTime.UtcNow.AddSeconds(30), default)).Step);
        Assert.Equal(1, grpc.Calls);
        Assert.Equal(1, attempts);
        lock (logged)
        {
            Assert.Contains(logged, l => l.Contains("its steps go as gRPC calls until its link is connected again"));
            Assert.Equal(2, logged.Count);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AWorkerThatConnectsNoLinkIsTriedAgainOnlyAfterTheIntervalAndSaidOnce(bool intervalPassed)
    {
        using var worker = LinkedWorker(_host, "w1");
        var link = _host.LinkOf("w1")!;
        var logged = new List<string>();
        var grpc = new CountingClient();
        int attempts = 0;
        var failed = new SemaphoreSlim(0);
        using var client = new LinkedWorkerClient(grpc, link, line =>
        {
            lock (logged) logged.Add(line);
            if (line.Contains("could not be connected again (the worker did not connect one)")) failed.Release();
        }, _ =>
        {
            Interlocked.Increment(ref attempts);
            return Task.FromResult<StepLink?>(null);
        }, reconnectInterval: intervalPassed ? TimeSpan.Zero : TimeSpan.FromHours(1));
        link.Dispose();
        await client.ComputeAsync(Request(0, new float[10], [1]), DateTime.UtcNow.AddSeconds(30), default);
        // The first attempt has ended (it is said once it has) before the next steps: only the interval can hold them back.
        Assert.True(await failed.WaitAsync(TimeSpan.FromSeconds(20)));
        int steps = 1;
        if (intervalPassed)
        {
            // With no interval a step tries again once the attempt before has ended; the attempt runs in the
            // background, so the steps leave it time to start (bounded: 2,000 steps, 20 s).
            var until = DateTime.UtcNow.AddSeconds(20);
            while (Volatile.Read(ref attempts) < 2 && steps < 2000 && DateTime.UtcNow < until)
            {
                await client.ComputeAsync(Request(steps++, new float[10], [1]), DateTime.UtcNow.AddSeconds(30), default);
                await Task.Delay(5);
            }
            Assert.True(Volatile.Read(ref attempts) >= 2, "no second attempt once the interval had passed");
        }
        else
        {
            for (; steps < 5; steps++)
                await client.ComputeAsync(Request(steps, new float[10], [1]), DateTime.UtcNow.AddSeconds(30), default);
            Assert.Equal(1, Volatile.Read(ref attempts));
        }
        Assert.Equal(steps, grpc.Calls); // every step went as a gRPC call
        // The fallback and the failure are said once each, however many attempts failed.
        lock (logged)
        {
            Assert.Single(logged, l => l.Contains("its steps go as gRPC calls until its link is connected again"));
            Assert.Single(logged, l => l.Contains("could not be connected again"));
        }
    }

    /// <summary>A stand-in for a worker's gRPC client that answers every step.</summary>
    private sealed class CountingClient : IWorkerClient
    {
        public int Calls;
        public Task<PrepareReply> PrepareAsync(PrepareRequest request, DateTime deadline, CancellationToken cancellationToken) =>
            throw new NotSupportedException();
        public Task<ReceiveDatasetReply> SendDatasetAsync(string fingerprint, ReadOnlyMemory<byte> payload, DateTime deadline,
            CancellationToken cancellationToken) => throw new NotSupportedException();
        public Task<ComputeReply> ComputeAsync(ComputeRequest request, DateTime deadline, CancellationToken cancellationToken)
        {
            Calls++;
            return Task.FromResult(new ComputeReply { ProtocolVersion = Protocol.Version, Step = request.Step });
        }
        public void Dispose() { }
    }

    [Fact]
    public async Task APendingCallFailsAsUnavailableTheMomentTheWorkerGoes()
    {
        var worker = LinkedWorker(_host, "w1");
        var link = _host.LinkOf("w1")!;
        var pending = link.ComputeAsync(Request(0, new float[10], [1]), DateTime.UtcNow.AddSeconds(30), default);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        worker.Shutdown(SocketShutdown.Both);
        worker.Close();
        var gone = await Assert.ThrowsAsync<RpcException>(() => pending);
        Assert.Equal(StatusCode.Unavailable, gone.StatusCode);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed}");
        Assert.Null(_host.LinkOf("w1"));
    }

    [Fact]
    public void TheHostListensWhereTheCoordinatorDoes()
    {
        using var loopback = TcpLinkHost.Create("http://127.0.0.1:5100", 0, 1 << 20, _ => { });
        using (var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
            socket.Connect(IPAddress.Loopback, loopback.Port);
        using var any = TcpLinkHost.Create("http://some-host:5100", 0, 1 << 20, _ => { });
        using (var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
            socket.Connect(IPAddress.Loopback, any.Port); // IPv4 reaches the dual-mode wildcard
        var taken = Assert.Throws<DistTrain.Core.UserInputException>(() => TcpLinkHost.Create("http://127.0.0.1:5100", loopback.Port, 1 << 20, _ => { }));
        Assert.Contains("--tcp-link-port", taken.Message);
    }

    [Fact]
    public async Task WithTlsOnlyAWorkerThatTrustsTheCoordinatorGetsALinkAndAPlaintextPeerIsRefused()
    {
        string dir = Directory.CreateTempSubdirectory("disttrain-tls-link-").FullName;
        try
        {
            using var authority = new Security.TestCertificates(dir, "link-ca");
            var (certificate, key) = authority.Issue("coordinator");
            Protos.Security.TlsCertificates Load(string? cert, string? pem, string? ca) => Protos.Security.TlsCertificates.Load(
                Protos.Security.SecurityOptions.Read(_ => null, name => name switch
                {
                    Protos.Security.SecurityOptions.TlsCertVariable => cert,
                    Protos.Security.SecurityOptions.TlsKeyVariable => pem,
                    Protos.Security.SecurityOptions.TlsCaVariable => ca,
                    _ => null,
                }))!;
            using var host = new TcpLinkHost(new IPEndPoint(IPAddress.Loopback, 0), 1 << 20, Refused, TimeSpan.FromSeconds(5),
                Load(certificate, key, null).ServerOptions());
            WorkerSession Session(Protos.Security.NodeSecurity security)
            {
                var options = new WorkerOptions { Coordinator = "https://127.0.0.1:1", Threads = 1, SharedMemory = false };
                return new WorkerSession(options, new DatasetStore(options, NullLogger<DatasetStore>.Instance),
                    NullLogger<WorkerSession>.Instance, security: security);
            }

            // A worker that does not trust the coordinator's CA does not connect, and says why.
            using (var untrusting = Session(Protos.Security.NodeSecurity.None))
            {
                var refused = await untrusting.PrepareAsync(Prepare(Big, "w2", host.OfferFor("w2")), default);
                Assert.False(refused.TcpLink);
                Assert.Contains("TLS", refused.TcpLinkNote);
                Assert.Null(host.LinkOf("w2"));
            }
            // One with the CA computes over a TLS link.
            using var trusting = Session(new Protos.Security.NodeSecurity(null, Load(null, null, authority.CaPath)));
            var reply = await trusting.PrepareAsync(Prepare(Big, "w1", host.OfferFor("w1")), default);
            Assert.True(reply.TcpLink, reply.TcpLinkNote);
            var link = host.LinkOf("w1")!;
            var weights = new Network(Big).CreateParameters(1);
            var overTls = await link.ComputeAsync(Request(3, weights, [3, 1, 4, 1]), DateTime.UtcNow.AddSeconds(30), default);
            var direct = await trusting.ComputeAsync(Request(3, weights, [3, 1, 4, 1]), default);
            Assert.Equal(direct.Blocks[0].GradientSum.ToByteArray(), overTls.Blocks[0].GradientSum.ToByteArray());

            // A plaintext hello with the right nonce is not a TLS handshake: refused, and the TLS link stays.
            using var plain = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = 20_000 };
            plain.Connect(IPAddress.Loopback, host.Port);
            StepFrames.Write(plain, 0, StepFrames.Hello, [.. host.OfferFor("w1").Nonce.ToByteArray(), .. "w1"u8.ToArray()]);
            Assert.True(ClosedUnanswered(plain));
            Assert.Same(link, host.LinkOf("w1"));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    public void Dispose()
    {
        _session.Dispose();
        _host.Dispose();
    }
}
