// Frames of a step link: the ComputeGradients request and reply of one worker, sent over one socket and read by
// dedicated threads with blocking calls — a Unix-domain socket in the coordinator's shared-memory directory for a
// worker on its machine (weights and sums then stay in shared memory), or a TCP connection for any other worker
// (weights and sums inside the messages). Over gRPC each step's call passes through a chain of thread-pool hand-offs
// on both sides (HTTP/2 frame loops, stream dispatch, continuations, 16 KiB frames through pipes), and on an idle
// machine each hand-off waits for a thread to wake: about 2 ms per small round trip on the 2-core test VM, and ~2 ms
// more per megabyte carried. Here a step costs two wake-ups; a payload is copied by the kernel into and out of the
// socket, and once more on each side (into the sender's frame or out of the receiver's buffer into a reused array).
// The messages are the same protobuf messages with the same validation; only their carrier differs.
//
// Frame: int32 payload length, int64 call id, byte kind, payload (all little-endian).
using System.Buffers.Binary;
using System.Net.Sockets;
using Google.Protobuf;

namespace DistTrain.Protos;

/// <summary>
/// One step link's bytes: a socket read and written directly, or (a TCP link of a node with TLS) a TLS stream over
/// it. One thread may read while another writes.
/// A plain socket is switched to non-blocking calls, and this class waits for it itself, with poll(2) on the thread
/// that reads or writes; so a sender can also give the socket what it takes now and leave the rest to a thread
/// (<see cref="TrySend"/>). Neither end ever makes an asynchronous call on a link's socket (connect and hello are
/// synchronous too): .NET registers such a socket with its epoll thread for good, and from then on every arrival of
/// bytes wakes that thread and a thread-pool thread, several times per megabyte — on a busy machine each of them waits
/// for a CPU that a computation needs.
/// </summary>
public sealed class StepConnection : IDisposable
{
    private readonly Stream? _tls;

    public StepConnection(Socket socket, Stream? tls = null)
    {
        Socket = socket;
        _tls = tls;
        if (tls is null) socket.Blocking = false;
    }

    public Socket Socket { get; }

    /// <summary>Sends all of <paramref name="data"/>, waiting for room up to the socket's SendTimeout (0: for ever).</summary>
    public void Send(ReadOnlySpan<byte> data)
    {
        if (_tls is not null)
        {
            _tls.Write(data);
            return;
        }
        while (!data.IsEmpty)
        {
            int sent = Socket.Send(data, SocketFlags.None, out var error);
            if (error == SocketError.Success) data = data[sent..];
            else if (error == SocketError.WouldBlock) Wait(SelectMode.SelectWrite, Socket.SendTimeout);
            else throw new SocketException((int)error);
        }
    }

    /// <summary>
    /// Sends what the socket takes now, without waiting: the count sent (0 when it has no room, and over TLS, where a
    /// record must be written whole by one thread).
    /// </summary>
    public int TrySend(ReadOnlySpan<byte> data)
    {
        if (_tls is not null || data.IsEmpty) return 0;
        int sent = Socket.Send(data, SocketFlags.None, out var error);
        if (error == SocketError.Success) return sent;
        if (error == SocketError.WouldBlock) return 0;
        throw new SocketException((int)error);
    }

    /// <summary>Reads at least one byte (0 at the end of the stream), waiting up to the socket's ReceiveTimeout (0: for ever).</summary>
    public int Receive(Span<byte> data)
    {
        if (_tls is not null) return _tls.Read(data);
        while (true)
        {
            int read = Socket.Receive(data, SocketFlags.None, out var error);
            if (error == SocketError.Success) return read;
            if (error != SocketError.WouldBlock) throw new SocketException((int)error);
            Wait(SelectMode.SelectRead, Socket.ReceiveTimeout);
        }
    }

    /// <summary>
    /// Waits until the socket has data (or its end): with poll(POLLIN), which, unlike a thread blocked in recv on a Unix
    /// socket, does not wake each time the peer consumes what this end sent (write space: every step, on the CPU where
    /// the peer starts computing). Over TLS decrypted bytes may already wait in the stream: its read waits instead.
    /// </summary>
    public void WaitReadable()
    {
        if (_tls is null) Wait(SelectMode.SelectRead, Socket.ReceiveTimeout);
    }

    /// <summary>poll(2) for <paramref name="mode"/>, up to <paramref name="timeoutMs"/> (0: no limit), as a blocking call would time out.</summary>
    private void Wait(SelectMode mode, int timeoutMs)
    {
        if (!Socket.Poll(timeoutMs > 0 ? (int)Math.Min(1000L * timeoutMs, int.MaxValue) : -1, mode))
            throw new SocketException((int)SocketError.TimedOut);
    }

    /// <summary>
    /// A TCP connection to the first of <paramref name="addresses"/> that accepts one before <paramref name="deadline"/>,
    /// made without .NET's asynchronous calls (see the class): a non-blocking connect, waited for with poll(2) in slices
    /// of 100 ms so that <paramref name="cancellationToken"/> is seen. Null when the deadline passed (before an address
    /// answered, or before one was tried); the last address's error when every one refused.
    /// </summary>
    public static Socket? ConnectTcp(IReadOnlyList<System.Net.IPAddress> addresses, int port, DateTime deadline,
        CancellationToken cancellationToken)
    {
        SocketException? failure = null;
        foreach (var address in addresses)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (DateTime.UtcNow >= deadline) return null;
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, Blocking = false };
            try
            {
                try { socket.Connect(new System.Net.IPEndPoint(address, port)); }
                catch (SocketException e) when (e.SocketErrorCode is SocketError.WouldBlock or SocketError.InProgress)
                {
                    while (!socket.Poll(100_000, SelectMode.SelectWrite) && !socket.Poll(0, SelectMode.SelectError))
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                        if (DateTime.UtcNow >= deadline)
                        {
                            socket.Dispose();
                            return null;
                        }
                    }
                    var error = (SocketError)(int)socket.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.Error)!;
                    if (error != SocketError.Success) throw new SocketException((int)error);
                }
                return socket;
            }
            catch (SocketException e)
            {
                socket.Dispose();
                failure = e;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
        throw failure ?? new SocketException((int)SocketError.HostNotFound);
    }

    /// <summary>TCP keepalive (probes after 30 s idle, every 10 s, 3 unanswered close it): a silently dropped peer ends the link.</summary>
    public static void KeepAlive(Socket socket)
    {
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, 30);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, 10);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount, 3);
    }

    public void Dispose()
    {
        try { _tls?.Dispose(); }
        catch (Exception e) when (e is IOException or ObjectDisposedException) { }
        Socket.Dispose();
    }

    public static implicit operator StepConnection(Socket socket) => new(socket);
}

public static class StepFrames
{
    public const int HeaderBytes = 13;
    /// <summary>Worker → coordinator once: nonce (16 bytes) + worker id (UTF-8); answered with an empty Hello.</summary>
    public const byte Hello = 0;
    public const byte Request = 1;
    public const byte Reply = 2;
    /// <summary>A refused or failed request: int32 gRPC status code + UTF-8 detail.</summary>
    public const byte Error = 3;

    /// <summary>
    /// Sends one frame in one write, so the peer wakes once for it (a header written apart from its payload woke the
    /// reader twice); callers serialize their sends.
    /// </summary>
    public static void Write(StepConnection socket, long id, byte kind, ReadOnlySpan<byte> payload)
    {
        var frame = System.Buffers.ArrayPool<byte>.Shared.Rent(HeaderBytes + payload.Length);
        try
        {
            payload.CopyTo(frame.AsSpan(HeaderBytes));
            SendFrame(socket, frame, id, kind, payload.Length);
        }
        finally { System.Buffers.ArrayPool<byte>.Shared.Return(frame); }
    }

    public static void Write(StepConnection socket, long id, byte kind, IMessage message)
    {
        int size = message.CalculateSize();
        var frame = System.Buffers.ArrayPool<byte>.Shared.Rent(HeaderBytes + size);
        try
        {
            message.WriteTo(frame.AsSpan(HeaderBytes, size));
            SendFrame(socket, frame, id, kind, size);
        }
        finally { System.Buffers.ArrayPool<byte>.Shared.Return(frame); }
    }

    /// <summary>
    /// One whole frame in an array of ArrayPool.Shared (its first <paramref name="length"/> bytes), for a sender that
    /// may write it later (on another thread) and then returns the array.
    /// </summary>
    public static byte[] RentFrame(long id, byte kind, IMessage message, out int length)
    {
        int size = message.CalculateSize();
        length = HeaderBytes + size;
        var frame = System.Buffers.ArrayPool<byte>.Shared.Rent(length);
        message.WriteTo(frame.AsSpan(HeaderBytes, size));
        WriteHeader(frame, size, id, kind);
        return frame;
    }

    /// <summary>The frame's header: the payload's length, the call id and the kind.</summary>
    private static void WriteHeader(Span<byte> frame, int payload, long id, byte kind)
    {
        BinaryPrimitives.WriteInt32LittleEndian(frame, payload);
        BinaryPrimitives.WriteInt64LittleEndian(frame[4..], id);
        frame[12] = kind;
    }

    private static void SendFrame(StepConnection socket, byte[] frame, long id, byte kind, int length)
    {
        WriteHeader(frame, length, id, kind);
        socket.Send(frame.AsSpan(0, HeaderBytes + length));
    }

    /// <summary>
    /// A request frame as <see cref="RentFrame"/> writes it, except that weights of 64 KiB or more are not copied in:
    /// the rented array holds the header and every other field, and <paramref name="tail"/> is the weights field's
    /// value, to be sent right after it (the field comes last on the wire, which protobuf allows). The sender then
    /// reads the weights where they are; the caller keeps them unchanged until it has sent them or given up the call.
    /// </summary>
    public static byte[] RentRequestFrame(long id, ComputeRequest request, out int length, out ReadOnlyMemory<byte> tail)
    {
        tail = ReadOnlyMemory<byte>.Empty;
        if (request.WeightsSourceCase != ComputeRequest.WeightsSourceOneofCase.Weights || request.Weights.Length < 64 << 10)
            return RentFrame(id, Request, request, out length);
        var head = request.Clone();
        head.ClearWeightsSource();
        int headBytes = head.CalculateSize();
        int weightsBytes = request.Weights.Length;
        int prefix = 1 + CodedOutputStream.ComputeLengthSize(weightsBytes);
        length = HeaderBytes + headBytes + prefix;
        var frame = System.Buffers.ArrayPool<byte>.Shared.Rent(length);
        head.WriteTo(frame.AsSpan(HeaderBytes, headBytes));
        WriteLengthDelimitedTag(frame.AsSpan(HeaderBytes + headBytes, prefix), ComputeRequest.WeightsFieldNumber, weightsBytes);
        WriteHeader(frame, headBytes + prefix + weightsBytes, id, Request);
        tail = request.Weights.Memory;
        return frame;
    }

    /// <summary>
    /// A reply frame as <see cref="RentFrame"/> writes it, except that a last block's sum of 64 KiB or more is not copied
    /// in: the rented array holds the header and everything else — the other fields first, then the last block with its
    /// sum's field last (protobuf allows any order) — and <paramref name="tail"/> is the sum's bytes, to be sent right
    /// after it, from where the worker computed them.
    /// </summary>
    public static byte[] RentReplyFrame(long id, ComputeReply reply, out int length, out ReadOnlyMemory<byte> tail)
    {
        tail = ReadOnlyMemory<byte>.Empty;
        if (reply.Blocks.Count == 0 || reply.Blocks[^1] is not { SumCase: BlockResult.SumOneofCase.GradientSum } last ||
            last.GradientSum.Length < 64 << 10)
            return RentFrame(id, Reply, reply, out length);
        var head = reply.Clone();
        head.Blocks.RemoveAt(head.Blocks.Count - 1);
        var lastHead = last.Clone();
        lastHead.ClearSum();
        int headBytes = head.CalculateSize(), lastHeadBytes = lastHead.CalculateSize(), sumBytes = last.GradientSum.Length;
        int sumPrefix = 1 + CodedOutputStream.ComputeLengthSize(sumBytes);
        int blockBytes = lastHeadBytes + sumPrefix + sumBytes;
        int blockPrefix = 1 + CodedOutputStream.ComputeLengthSize(blockBytes);
        length = HeaderBytes + headBytes + blockPrefix + lastHeadBytes + sumPrefix;
        var frame = System.Buffers.ArrayPool<byte>.Shared.Rent(length);
        int at = HeaderBytes;
        head.WriteTo(frame.AsSpan(at, headBytes));
        at += headBytes;
        at += WriteLengthDelimitedTag(frame.AsSpan(at), ComputeReply.BlocksFieldNumber, blockBytes);
        lastHead.WriteTo(frame.AsSpan(at, lastHeadBytes));
        at += lastHeadBytes;
        WriteLengthDelimitedTag(frame.AsSpan(at), BlockResult.GradientSumFieldNumber, sumBytes);
        WriteHeader(frame, headBytes + blockPrefix + blockBytes, id, Reply);
        tail = last.GradientSum.Memory;
        return frame;
    }

    /// <summary>The tag of length-delimited field <paramref name="field"/> (below 16) and the varint length; the bytes written.</summary>
    private static int WriteLengthDelimitedTag(Span<byte> into, int field, int length)
    {
        into[0] = (byte)WireFormat.MakeTag(field, WireFormat.WireType.LengthDelimited);
        int prefix = 1 + CodedOutputStream.ComputeLengthSize(length);
        for (int i = 1, value = length; i < prefix; i++, value >>= 7) into[i] = (byte)(i < prefix - 1 ? (value & 0x7F) | 0x80 : value);
        return prefix;
    }

    public static void WriteError(StepConnection socket, long id, Grpc.Core.StatusCode code, string detail)
    {
        var text = System.Text.Encoding.UTF8.GetBytes(detail);
        var payload = new byte[4 + text.Length];
        BinaryPrimitives.WriteInt32LittleEndian(payload, (int)code);
        text.CopyTo(payload, 4);
        Write(socket, id, Error, payload);
    }

    public static (Grpc.Core.StatusCode Code, string Detail) ReadError(ReadOnlySpan<byte> payload) => payload.Length < 4
        ? (Grpc.Core.StatusCode.Internal, "malformed error frame")
        : ((Grpc.Core.StatusCode)BinaryPrimitives.ReadInt32LittleEndian(payload),
            System.Text.Encoding.UTF8.GetString(payload[4..]));

    /// <summary>
    /// Reads one frame into <paramref name="buffer"/> (grown as needed, up to <paramref name="maxPayload"/>).
    /// Returns false at the end of the stream; throws IOException for a frame over the limit or a cut stream.
    /// </summary>
    public static bool Read(StepConnection socket, ref byte[] buffer, int maxPayload, out long id, out byte kind, out int length)
    {
        Span<byte> header = stackalloc byte[HeaderBytes];
        id = 0;
        kind = 0;
        length = 0;
        socket.WaitReadable();
        if (!ReceiveAll(socket, header, allowEnd: true)) return false;
        length = BinaryPrimitives.ReadInt32LittleEndian(header);
        id = BinaryPrimitives.ReadInt64LittleEndian(header[4..]);
        kind = header[12];
        if (length < 0 || length > maxPayload)
            throw new IOException($"step link frame of {length} bytes exceeds the limit of {maxPayload}");
        if (buffer.Length < length) buffer = new byte[Math.Max(length, 2 * buffer.Length)];
        ReceiveAll(socket, buffer.AsSpan(0, length), allowEnd: false);
        return true;
    }

    /// <summary>
    /// Fills <paramref name="data"/>; false when the stream ended before its first byte and <paramref name="allowEnd"/>,
    /// IOException when it ended anywhere else.
    /// </summary>
    public static bool ReceiveAll(StepConnection socket, Span<byte> data, bool allowEnd)
    {
        bool first = true;
        while (!data.IsEmpty)
        {
            int read = socket.Receive(data);
            if (read == 0)
            {
                if (first && allowEnd) return false;
                throw new IOException("the step link closed in the middle of a frame");
            }
            data = data[read..];
            first = false;
        }
        return true;
    }
}
