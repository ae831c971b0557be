// The worker's end of a step link (protos/StepLink.cs): a dedicated thread reads ComputeGradients requests from the
// coordinator's TCP connection (TcpLinkOffer) or Unix-domain socket (same host: SameHost/WorkerStepLink.Unix.cs), computes each on itself (bound like the
// compute thread), and writes the reply or the refusal back. Requests are read (weights into a pooled array) and
// validated exactly as over gRPC (StepWire, the same WorkerSession code).
using System.Net.Sockets;
using DistTrain.Protos;
using Google.Protobuf;
using Grpc.Core;

namespace DistTrain.Worker;

public sealed partial class WorkerStepLink : IDisposable
{
    private readonly StepConnection _socket;
    private readonly Func<ComputeRequest, ComputeReply> _compute;
    private readonly int _maxRequestBytes;
    private readonly ILogger _log;
    private int _closed;

    private WorkerStepLink(StepConnection socket, Func<ComputeRequest, ComputeReply> compute, int maxRequestBytes, ILogger log)
    {
        _socket = socket;
        _compute = compute;
        _maxRequestBytes = maxRequestBytes;
        _log = log;
        new Thread(Serve) { IsBackground = true, Name = "disttrain-link" }.Start();
    }

    /// <summary>
    /// Connects over TCP to <paramref name="host"/>:<paramref name="port"/>, as a TLS client with
    /// <paramref name="tls"/> when given, says hello and waits for the answer — 10 s for all of it, and no longer than
    /// <paramref name="cancellationToken"/> allows (the Prepare it serves may be given up). Every call on the socket is
    /// synchronous, on a thread of its own (StepConnection says why): a non-blocking connect waited for with poll(2), a
    /// blocking TLS handshake and hello.
    /// </summary>
    public static async Task<WorkerStepLink> ConnectTcpAsync(string host, int port, ReadOnlyMemory<byte> nonce, string workerId,
        Func<ComputeRequest, ComputeReply> compute, int maxRequestBytes, ILogger log,
        System.Net.Security.SslClientAuthenticationOptions? tls, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        System.Net.IPAddress[] addresses;
        using (var resolving = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            resolving.CancelAfter(TimeSpan.FromSeconds(10));
            try
            {
                addresses = System.Net.IPAddress.TryParse(host, out var literal) ? [literal]
                    : await System.Net.Dns.GetHostAddressesAsync(host, resolving.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new IOException($"no step link to {host}:{port}: resolving {host} took over 10 s");
            }
        }
        return await Task.Factory.StartNew(() => Connect(addresses, host, port, nonce, workerId, compute, maxRequestBytes, log, tls,
            deadline, cancellationToken), cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default).ConfigureAwait(false);
    }

    private static WorkerStepLink Connect(System.Net.IPAddress[] addresses, string host, int port, ReadOnlyMemory<byte> nonce,
        string workerId, Func<ComputeRequest, ComputeReply> compute, int maxRequestBytes, ILogger log,
        System.Net.Security.SslClientAuthenticationOptions? tls, DateTime deadline, CancellationToken cancellationToken)
    {
        var socket = StepConnection.ConnectTcp(addresses, port, deadline, cancellationToken)
            ?? throw new IOException($"no step link to {host}:{port} within 10 s");
        StepConnection? connection = null;
        // Blocking calls end when the socket is closed: at the deadline, or when the caller gives up — unless the link
        // was made first (state 1; 2: closed by one of them).
        int state = 0;
        void Abandon()
        {
            if (Interlocked.CompareExchange(ref state, 2, 0) == 0) socket.Dispose();
        }
        using var stop = new Timer(_ => Abandon(), null, Remaining(deadline), Timeout.InfiniteTimeSpan);
        using var cancelled = cancellationToken.Register(Abandon);
        try
        {
            StepConnection.KeepAlive(socket);
            if (tls is not null)
            {
                socket.Blocking = true;
                var secure = new System.Net.Security.SslStream(new NetworkStream(socket, ownsSocket: false));
                connection = new StepConnection(socket, secure);
                secure.AuthenticateAsClient(tls);
            }
            else connection = new StepConnection(socket);
            socket.ReceiveTimeout = socket.SendTimeout = Math.Max(1, (int)Remaining(deadline).TotalMilliseconds);
            var link = Hello(connection, nonce.Span, workerId, compute, maxRequestBytes, log);
            socket.SendTimeout = 0;
            if (Interlocked.CompareExchange(ref state, 1, 0) == 0) return link;
            link.Dispose();
            throw new ObjectDisposedException(nameof(Socket)); // the deadline or the caller came first
        }
        catch (Exception e)
        {
            if (connection is not null) connection.Dispose();
            else socket.Dispose();
            cancellationToken.ThrowIfCancellationRequested();
            if (e is System.Security.Authentication.AuthenticationException)
                throw new IOException($"TLS with {host}:{port} failed: {e.Message}");
            if (DateTime.UtcNow >= deadline || e is ObjectDisposedException)
                throw new IOException($"no step link to {host}:{port} within 10 s");
            throw;
        }
    }

    private static TimeSpan Remaining(DateTime deadline)
    {
        var left = deadline - DateTime.UtcNow;
        return left > TimeSpan.Zero ? left : TimeSpan.Zero;
    }

    private static byte[] HelloPayload(ReadOnlySpan<byte> nonce, string workerId)
    {
        var id = System.Text.Encoding.UTF8.GetBytes(workerId);
        var hello = new byte[nonce.Length + id.Length];
        nonce.CopyTo(hello);
        id.CopyTo(hello, nonce.Length);
        return hello;
    }

    /// <summary>Proves <paramref name="nonce"/> and <paramref name="workerId"/>, and waits (10 s) for the answer.</summary>
    internal static WorkerStepLink Hello(StepConnection socket, ReadOnlySpan<byte> nonce, string workerId,
        Func<ComputeRequest, ComputeReply> compute, int maxRequestBytes, ILogger log)
    {
        try
        {
            StepFrames.Write(socket, 0, StepFrames.Hello, HelloPayload(nonce, workerId));
            if (socket.Socket.ReceiveTimeout is <= 0 or > 10_000) socket.Socket.ReceiveTimeout = 10_000;
            var buffer = new byte[16];
            if (!StepFrames.Read(socket, ref buffer, buffer.Length, out _, out byte kind, out _) || kind != StepFrames.Hello)
                throw new IOException("the coordinator did not accept the step link");
            socket.Socket.ReceiveTimeout = 0;
            return new WorkerStepLink(socket, compute, maxRequestBytes, log);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private void Serve()
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (StepFrames.Read(_socket, ref buffer, _maxRequestBytes, out long id, out byte kind, out int length))
            {
                if (kind != StepFrames.Request)
                {
                    StepFrames.WriteError(_socket, id, StatusCode.InvalidArgument, $"unexpected step link frame kind {kind}");
                    continue;
                }
                ComputeReply reply;
                try
                {
                    // The weights stay in the read buffer: the request is computed before the next frame is read.
                    reply = _compute(StepWire.ParseRequestInPlace(buffer.AsMemory(0, length)));
                }
                catch (InvalidProtocolBufferException e)
                {
                    StepFrames.WriteError(_socket, id, StatusCode.InvalidArgument, $"malformed ComputeRequest: {e.Message}");
                    continue;
                }
                catch (RpcException e)
                {
                    if (e.StatusCode != StatusCode.Cancelled) _log.LogWarning("ComputeGradients refused: {Status} {Detail}", e.StatusCode, e.Status.Detail);
                    StepFrames.WriteError(_socket, id, e.StatusCode, e.Status.Detail);
                    continue;
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    _log.LogError(e, "ComputeGradients failed");
                    StepFrames.WriteError(_socket, id, StatusCode.Internal, $"ComputeGradients failed on the worker: {e.Message}");
                    continue;
                }
                // The last block's sum goes from where it was computed (no copy into the frame).
                var frame = StepFrames.RentReplyFrame(id, reply, out int frameLength, out var tail);
                try
                {
                    _socket.Send(frame.AsSpan(0, frameLength));
                    _socket.Send(tail.Span);
                }
                finally
                {
                    System.Buffers.ArrayPool<byte>.Shared.Return(frame);
                    StepWire.ReturnSums(reply);
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            if (Volatile.Read(ref _closed) == 0) _log.LogInformation("step link closed: {Reason}", e.Message);
            Dispose();
            return;
        }
        catch (Exception e)
        {
            // Anything else ends the link (the coordinator falls back to gRPC calls), never the process.
            if (Volatile.Read(ref _closed) == 0) _log.LogWarning(e, "step link closed");
            Dispose();
            return;
        }
        if (Volatile.Read(ref _closed) == 0) _log.LogInformation("step link closed by the coordinator");
        Dispose();
    }

    public bool IsOpen => Volatile.Read(ref _closed) == 0;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _closed, 1) == 0) _socket.Dispose();
    }
}
