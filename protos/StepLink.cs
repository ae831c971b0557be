// Frames of the same-host step link: the ComputeGradients request and reply of a worker on the coordinator's machine,
// sent over a Unix-domain socket in the coordinator's shared-memory directory and read by dedicated threads with
// blocking calls. Over gRPC each step's call passes through a chain of thread-pool hand-offs on both sides (HTTP/2
// frame loops, stream dispatch, continuations), and on an idle machine each hand-off waits for a thread to wake:
// about 2 ms per round trip on the 2-core test VM, 10% of a lecture-model step. Here a step costs two wake-ups.
// The messages are the same protobuf messages with the same validation; only their carrier differs.
//
// Frame: int32 payload length, int64 call id, byte kind, payload (all little-endian).
using System.Buffers.Binary;
using System.Net.Sockets;
using Google.Protobuf;

namespace DistTrain.Protos;

public static class StepFrames
{
    public const int HeaderBytes = 13;
    /// <summary>Worker → coordinator once: nonce (16 bytes) + worker id (UTF-8); answered with an empty Hello.</summary>
    public const byte Hello = 0;
    public const byte Request = 1;
    public const byte Reply = 2;
    /// <summary>A refused or failed request: int32 gRPC status code + UTF-8 detail.</summary>
    public const byte Error = 3;

    /// <summary>Sends one frame; callers serialize their sends.</summary>
    public static void Write(Socket socket, long id, byte kind, ReadOnlySpan<byte> payload)
    {
        Span<byte> header = stackalloc byte[HeaderBytes];
        BinaryPrimitives.WriteInt32LittleEndian(header, payload.Length);
        BinaryPrimitives.WriteInt64LittleEndian(header[4..], id);
        header[12] = kind;
        SendAll(socket, header);
        SendAll(socket, payload);
    }

    public static void Write(Socket socket, long id, byte kind, IMessage message)
    {
        int size = message.CalculateSize();
        var bytes = System.Buffers.ArrayPool<byte>.Shared.Rent(size);
        try
        {
            message.WriteTo(bytes.AsSpan(0, size));
            Write(socket, id, kind, bytes.AsSpan(0, size));
        }
        finally { System.Buffers.ArrayPool<byte>.Shared.Return(bytes); }
    }

    public static void WriteError(Socket socket, long id, Grpc.Core.StatusCode code, string detail)
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
    public static bool Read(Socket socket, ref byte[] buffer, int maxPayload, out long id, out byte kind, out int length)
    {
        Span<byte> header = stackalloc byte[HeaderBytes];
        id = 0;
        kind = 0;
        length = 0;
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

    private static void SendAll(Socket socket, ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty) data = data[socket.Send(data)..];
    }

    private static bool ReceiveAll(Socket socket, Span<byte> data, bool allowEnd)
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
