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
    /// <paramref name="cancellationToken"/> allows (the Prepare it serves may be given up).
    /// </summary>
    public static async Task<WorkerStepLink> ConnectTcpAsync(string host, int port, ReadOnlyMemory<byte> nonce, string workerId,
        Func<ComputeRequest, ComputeReply> compute, int maxRequestBytes, ILogger log,
        System.Net.Security.SslClientAuthenticationOptions? tls, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        StepConnection? connection = null;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        try
        {
            StepConnection.KeepAlive(socket);
            await socket.ConnectAsync(host, port, timeout.Token).ConfigureAwait(false);
            Stream stream = new NetworkStream(socket, ownsSocket: false);
            if (tls is not null)
            {
                var secure = new System.Net.Security.SslStream(stream);
                stream = secure;
                connection = new StepConnection(socket, secure);
                await secure.AuthenticateAsClientAsync(tls, timeout.Token).ConfigureAwait(false);
            }
            else connection = new StepConnection(socket);
            StepFrames.Write(connection, 0, StepFrames.Hello, HelloPayload(nonce.Span, workerId));
            var answer = new byte[StepFrames.HeaderBytes];
            try { await stream.ReadExactlyAsync(answer, timeout.Token).ConfigureAwait(false); }
            catch (EndOfStreamException) { throw new IOException("the coordinator did not accept the step link"); }
            if (answer[12] != StepFrames.Hello || System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(answer) != 0)
                throw new IOException("the coordinator did not answer the hello");
            return new WorkerStepLink(connection, compute, maxRequestBytes, log);
        }
        catch (Exception e)
        {
            if (connection is not null) connection.Dispose();
            else socket.Dispose();
            if (e is OperationCanceledException && !cancellationToken.IsCancellationRequested)
                throw new IOException($"no step link to {host}:{port} within 10 s");
            if (e is System.Security.Authentication.AuthenticationException)
                throw new IOException($"TLS with {host}:{port} failed: {e.Message}");
            throw;
        }
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
