// ComputeGradients on gRPC without a per-step allocation of its big fields. The messages are the proto's and the wire
// format is plain protobuf (any client of the .proto can call it), but the method is bound with these marshallers:
// reading a request copies `weights`, and reading a reply copies each block's `gradient_sum`, straight from the
// received HTTP/2 buffers into float arrays of a pool (WireBuffers) instead of into a fresh 1 MB byte string per
// message; writing copies the wrapped float arrays once into the transport's buffer and returns pooled ones. The
// other fields are parsed by the generated parser. A payload the scan cannot follow is left to the generated parser,
// so malformed input fails as it always did.
using System.Buffers;
using Google.Protobuf;
using Grpc.Core;

namespace DistTrain.Protos;

public static class StepWire
{
    private const int RequestWeightsField = ComputeRequest.WeightsFieldNumber;
    private const int ReplyBlocksField = ComputeReply.BlocksFieldNumber;
    private const int BlockGradientField = BlockResult.GradientSumFieldNumber;

    public static readonly Marshaller<ComputeRequest> RequestMarshaller = new(Write, ReadRequest);
    public static readonly Marshaller<ComputeReply> ReplyMarshaller = new(WriteReply, ReadReply);
    public static readonly Marshaller<FetchWeightsReply> WeightsMarshaller = new(Write,
        context => ReadTopLevel(context, FetchWeightsReply.WeightsFieldNumber, FetchWeightsReply.Parser, (m, weights) => m.Weights = weights));

    /// <summary>The Coordinator service's FetchWeights, its reply's weights read into a pooled array.</summary>
    public static readonly Method<FetchWeightsRequest, FetchWeightsReply> FetchWeights =
        new(MethodType.Unary, "disttrain.v1.Coordinator", "FetchWeights",
            new Marshaller<FetchWeightsRequest>(Write, context => FetchWeightsRequest.Parser.ParseFrom(context.PayloadAsReadOnlySequence())),
            WeightsMarshaller);

    /// <summary>The Worker service's ComputeGradients with the pooled marshallers (same service and method name).</summary>
    public static readonly Method<ComputeRequest, ComputeReply> ComputeGradients =
        new(MethodType.Unary, "disttrain.v1.Worker", "ComputeGradients", RequestMarshaller, ReplyMarshaller);

    /// <summary>Protobuf straight into the transport's buffer (the wrapped arrays are copied once, there).</summary>
    private static void Write<T>(T message, SerializationContext context) where T : IMessage
    {
        context.SetPayloadLength(message.CalculateSize());
        message.WriteTo(context.GetBufferWriter());
        context.Complete();
    }

    private static void WriteReply(ComputeReply message, SerializationContext context)
    {
        Write(message, context);
        ReturnSums(message);
    }

    /// <summary>After a reply is written: its sums' pooled arrays can serve the next reply.</summary>
    public static void ReturnSums(ComputeReply message)
    {
        foreach (var block in message.Blocks) WireBuffers.Return(block.GradientSum);
    }

    private static T ReadTopLevel<T>(DeserializationContext context, int field, MessageParser<T> parser, Action<T, ByteString> set)
        where T : class, IMessage<T>
    {
        var payload = context.PayloadAsReadOnlySequence();
        return TryReadBulk(payload, field, parser, inPlace: false, set) ?? parser.ParseFrom(payload);
    }

    /// <summary>
    /// A request with its weights in a pooled array. weights, weights_ticket and shared_memory are one oneof, where the
    /// later field on the wire wins: a payload with weights and another (no coordinator sends one) is read by the
    /// generated parser, which knows the order.
    /// </summary>
    private static ComputeRequest ReadRequest(DeserializationContext context) => ParseRequest(context.PayloadAsReadOnlySequence());

    /// <summary>A request read as the gRPC marshaller reads it (its weights in a pooled array), from any carrier.</summary>
    public static ComputeRequest ParseRequest(ReadOnlySequence<byte> payload) => ParseRequest(payload, inPlace: false);

    /// <summary>
    /// A request whose weights are not copied: they wrap their bytes in <paramref name="payload"/>, so the request is
    /// good only while the caller keeps that buffer unchanged (a step link computing each request before it reads
    /// the next).
    /// </summary>
    public static ComputeRequest ParseRequestInPlace(ReadOnlyMemory<byte> payload) =>
        ParseRequest(new ReadOnlySequence<byte>(payload), inPlace: true);

    private static ComputeRequest ParseRequest(ReadOnlySequence<byte> payload, bool inPlace)
    {
        bool both = false;
        var message = TryReadBulk(payload, RequestWeightsField, ComputeRequest.Parser, inPlace, (m, weights) =>
        {
            if (m.WeightsSourceCase != ComputeRequest.WeightsSourceOneofCase.None)
            {
                both = true;
                WireBuffers.Return(weights);
            }
            else m.Weights = weights;
        });
        return message is null || both ? ComputeRequest.Parser.ParseFrom(payload) : message;
    }

    private static ComputeReply ReadReply(DeserializationContext context) => ParseReply(context.PayloadAsReadOnlySequence());

    /// <summary>A reply read as the gRPC marshaller reads it (each gradient sum in a pooled array), from any carrier.</summary>
    public static ComputeReply ParseReply(ReadOnlySequence<byte> payload)
    {
        if (!TryRead(payload, ReplyBlocksField, out var rest, out _,
                ReadBlock, out var blocks))
            return ComputeReply.Parser.ParseFrom(payload);
        var message = ComputeReply.Parser.ParseFrom(rest);
        message.Blocks.AddRange(blocks!);
        return message;
    }

    /// <summary>
    /// A reply block with its sum in a pooled array. The sum is a oneof with in_shared_slot and claimed_elsewhere: a
    /// block carrying a sum and another (no worker sends one) is read by the generated parser, which knows the order.
    /// Null when the scan cannot follow it.
    /// </summary>
    private static BlockResult? ReadBlock(ReadOnlySequence<byte> payload)
    {
        bool both = false;
        var block = TryReadBulk(payload, BlockGradientField, BlockResult.Parser, inPlace: false, (m, sum) =>
        {
            if (m.SumCase != BlockResult.SumOneofCase.None)
            {
                both = true;
                WireBuffers.Return(sum);
            }
            else m.GradientSum = sum;
        });
        return block is not null && both ? BlockResult.Parser.ParseFrom(payload) : block;
    }

    /// <summary>
    /// The message with its length-delimited field <paramref name="field"/> in a pooled array (when it is a float
    /// vector worth pooling); null when the scan cannot follow the payload (the generated parser then decides).
    /// </summary>
    private static T? TryReadBulk<T>(ReadOnlySequence<byte> payload, int field, MessageParser<T> parser, bool inPlace,
        Action<T, ByteString> set) where T : class, IMessage<T>
    {
        if (!TryRead<T>(payload, field, out var rest, out var bulk, nested: null, out _, inPlace)) return null;
        var message = parser.ParseFrom(rest);
        if (bulk is not null) set(message, bulk);
        return message;
    }

    /// <summary>
    /// Scans the top-level fields of <paramref name="payload"/>: field <paramref name="field"/> (length-delimited) is
    /// taken out — as pooled floats into <paramref name="bulk"/>, or with <paramref name="nested"/> as one message per
    /// occurrence into <paramref name="messages"/> — and every other field is copied into <paramref name="rest"/>, in
    /// order. False when the payload is not a sequence of fields this scan can follow.
    /// </summary>
    private static bool TryRead<T>(ReadOnlySequence<byte> payload, int field, out byte[] rest, out ByteString? bulk,
        Func<ReadOnlySequence<byte>, T?>? nested, out List<T>? messages, bool inPlace = false) where T : class
    {
        (rest, bulk, messages) = ([], null, nested is null ? null : []);
        var reader = new SequenceReader<byte>(payload);
        var kept = new ArrayBufferWriter<byte>(256);
        while (!reader.End)
        {
            long start = reader.Consumed;
            if (!TryReadVarint(ref reader, out ulong tag)) return Fail(bulk);
            int number = (int)Math.Min(tag >> 3, int.MaxValue);
            switch ((int)(tag & 7))
            {
                case 0:
                    if (!TryReadVarint(ref reader, out _)) return Fail(bulk);
                    break;
                case 1:
                    if (reader.Remaining < 8) return Fail(bulk);
                    reader.Advance(8);
                    break;
                case 5:
                    if (reader.Remaining < 4) return Fail(bulk);
                    reader.Advance(4);
                    break;
                case 2:
                    if (!TryReadVarint(ref reader, out ulong length) || length > (ulong)reader.Remaining) return Fail(bulk);
                    if (number == field)
                    {
                        var value = reader.Sequence.Slice(reader.Position, (long)length);
                        reader.Advance((long)length);
                        if (nested is not null)
                        {
                            if (nested(value) is not { } message) return Fail(bulk);
                            messages!.Add(message);
                        }
                        else
                        {
                            // Last one wins, as protobuf merges a repeated scalar field.
                            WireBuffers.Return(bulk);
                            bulk = inPlace && value.IsSingleSegment ? UnsafeByteOperations.UnsafeWrap(value.First) : WireBuffers.Copy(value);
                        }
                        continue;
                    }
                    reader.Advance((long)length);
                    break;
                default:
                    return Fail(bulk); // groups: the generated parser decides
            }
            payload.Slice(start, reader.Consumed - start).CopyTo(kept.GetSpan((int)(reader.Consumed - start)));
            kept.Advance((int)(reader.Consumed - start));
        }
        rest = kept.WrittenSpan.ToArray();
        return true;
    }

    private static bool Fail(ByteString? bulk)
    {
        WireBuffers.Return(bulk);
        return false;
    }

    private static bool TryReadVarint(ref SequenceReader<byte> reader, out ulong value)
    {
        value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (!reader.TryRead(out byte b)) return false;
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return true;
        }
        return false;
    }
}
