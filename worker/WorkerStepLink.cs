// The worker's end of a step link (protos/StepLink.cs): a dedicated thread reads ComputeGradients requests from the
// coordinator's Unix-domain socket (same host) or TCP connection (TcpLinkOffer), computes each on itself (bound like the
// compute thread), and writes the reply or the refusal back. Requests are read (weights into a pooled array) and
// validated exactly as over gRPC (StepWire, the same WorkerSession code).
using System.Net.Sockets;
using DistTrain.Protos;
using Google.Protobuf;
using Grpc.Core;

namespace DistTrain.Worker;

public sealed class WorkerStepLink : IDisposable
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

    /// <summary>Connects to the Unix-domain socket at <paramref name="path"/> and says hello (see <see cref="Hello"/>).</summary>
    public static WorkerStepLink Connect(string path, ReadOnlySpan<byte> nonce, string workerId,
        Func<ComputeRequest, ComputeReply> compute, int maxRequestBytes, ILogger log)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try { socket.Connect(new UnixDomainSocketEndPoint(path)); }
        catch
        {
            socket.Dispose();
            throw;
        }
        return Hello(new StepConnection(socket), nonce, workerId, compute, maxRequestBytes, log);
    }

    /// <summary>
    /// Connects over TCP to <paramref name="host"/>:<paramref name="port"/> (10 s at most), as a TLS client with
    /// <paramref name="tls"/> when given, and says hello.
    /// </summary>
    public static WorkerStepLink ConnectTcp(string host, int port, ReadOnlySpan<byte> nonce, string workerId,
        Func<ComputeRequest, ComputeReply> compute, int maxRequestBytes, ILogger log, System.Net.Security.SslClientAuthenticationOptions? tls = null)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        StepConnection.KeepAlive(socket);
        StepConnection connection;
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                socket.ConnectAsync(host, port, timeout.Token).AsTask().GetAwaiter().GetResult();
                if (tls is null) connection = new StepConnection(socket);
                else
                {
                    var stream = new System.Net.Security.SslStream(new NetworkStream(socket, ownsSocket: false));
                    try
                    {
                        stream.AuthenticateAsClientAsync(tls, timeout.Token).GetAwaiter().GetResult();
                    }
                    catch
                    {
                        stream.Dispose();
                        throw;
                    }
                    connection = new StepConnection(socket, stream);
                }
            }
            catch (OperationCanceledException) { throw new IOException($"no connection to {host}:{port} within 10 s"); }
            catch (System.Security.Authentication.AuthenticationException e) { throw new IOException($"TLS with {host}:{port} failed: {e.Message}"); }
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return Hello(connection, nonce, workerId, compute, maxRequestBytes, log);
    }

    /// <summary>Proves <paramref name="nonce"/> and <paramref name="workerId"/>, and waits (10 s) for the answer.</summary>
    private static WorkerStepLink Hello(StepConnection socket, ReadOnlySpan<byte> nonce, string workerId,
        Func<ComputeRequest, ComputeReply> compute, int maxRequestBytes, ILogger log)
    {
        try
        {
            var id = System.Text.Encoding.UTF8.GetBytes(workerId);
            var hello = new byte[nonce.Length + id.Length];
            nonce.CopyTo(hello);
            id.CopyTo(hello, nonce.Length);
            StepFrames.Write(socket, 0, StepFrames.Hello, hello);
            socket.Socket.ReceiveTimeout = 10_000;
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
                try { StepFrames.Write(_socket, id, StepFrames.Reply, reply); }
                finally { StepWire.ReturnSums(reply); }
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
