// ComputeGradients' pooled marshallers: what they write is the generated code's protobuf (a generated parser reads it
// field for field), what they read equals what the generated parser reads — for the big fields in any position,
// repeated, nested, empty or of odd length — the big fields land in pooled arrays that come back after use, and a
// payload that is not valid protobuf fails as it does with the generated parser.
using Google.Protobuf;
using DistTrain.Protos;

namespace DistTrain.Tests.Wire;

public class StepWireTests
{
    private sealed class Written : Grpc.Core.SerializationContext
    {
        private readonly System.Buffers.ArrayBufferWriter<byte> _buffer = new();
        public byte[] Bytes => _buffer.WrittenSpan.ToArray();
        public override void Complete(byte[] payload) => System.Buffers.BuffersExtensions.Write(_buffer, (ReadOnlySpan<byte>)payload);
        public override System.Buffers.IBufferWriter<byte> GetBufferWriter() => _buffer;
        public override void SetPayloadLength(int payloadLength) { }
        public override void Complete() { }
    }

    private sealed class Received(byte[] payload) : Grpc.Core.DeserializationContext
    {
        public override int PayloadLength => payload.Length;
        public override byte[] PayloadAsNewBuffer() => (byte[])payload.Clone();
        // In three segments, as a message arrives in HTTP/2 frames.
        public override System.Buffers.ReadOnlySequence<byte> PayloadAsReadOnlySequence() => Segments.Of(payload, 3);
    }

    private static byte[] Serialize<T>(Grpc.Core.Marshaller<T> marshaller, T message)
    {
        var context = new Written();
        marshaller.ContextualSerializer(message, context);
        return context.Bytes;
    }

    private static T Deserialize<T>(Grpc.Core.Marshaller<T> marshaller, byte[] payload) =>
        marshaller.ContextualDeserializer(new Received(payload));

    private static float[] Floats(int n, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)random.NextDouble()).ToArray();
    }

    private static ComputeRequest Request(int parameters) => new()
    {
        ProtocolVersion = Protocol.Version, Step = 7, WeightsVersion = 7, BatchSize = 100, ShardSize = 25,
        Weights = WireArrays.Wrap(Floats(parameters, 1)), Wire = WirePrecision.Bfloat16,
        Blocks =
        {
            new BlockRange { FirstShard = 0, ShardCount = 2, SampleIndices = WireArrays.Copy([1, 2, 3]) },
            new BlockRange { FirstShard = 2, ShardCount = 1, SharedSlot = 4 },
        },
    };

    [Theory]
    [InlineData(16_383)] // below 64 KiB: one whole frame
    [InlineData(16_384)] // 64 KiB: header and fields in the frame, the weights sent after it
    [InlineData(40_003)]
    [InlineData(4_194_304)] // 16 MiB: a four-byte length prefix
    public void ALinkRequestFrameWithItsWeightsSentApartReadsAsTheRequest(int parameters)
    {
        var request = Request(parameters);
        request.NextWeightsTicket = ByteString.CopyFrom(new byte[16]);
        var frame = StepFrames.RentRequestFrame(42, request, out int length, out var tail);
        Assert.Equal(parameters >= 16_384, !tail.IsEmpty);
        var payload = Payload(frame, length, tail, 42, StepFrames.Request, request.CalculateSize());
        Assert.Equal(request, ComputeRequest.Parser.ParseFrom(payload.Span));
        var read = StepWire.ParseRequest(new System.Buffers.ReadOnlySequence<byte>(payload));
        Assert.Equal(request, read);
        WireBuffers.Return(read.Weights);
        // In place (a link's reader): the same request, its weights the payload's own bytes.
        var inPlace = StepWire.ParseRequestInPlace(payload);
        Assert.Equal(request, inPlace);
        Assert.True(payload.Span.Overlaps(inPlace.Weights.Span));
    }

    [Theory]
    [InlineData(16_383, 3)] // below 64 KiB: one whole frame
    [InlineData(16_384, 3)] // the last block's sum sent after the frame, the first block's inside it
    [InlineData(40_003, 1)]
    [InlineData(40_003, 2)] // the last block claimed elsewhere: nothing to send apart
    [InlineData(4_194_304, 1)] // 16 MiB: four-byte length prefixes for the block and its sum
    public void ALinkReplyFrameWithItsLastSumSentApartReadsAsTheReply(int parameters, int blocks)
    {
        var reply = Reply(parameters);
        while (reply.Blocks.Count > blocks) reply.Blocks.RemoveAt(reply.Blocks.Count - 1);
        var frame = StepFrames.RentReplyFrame(9, reply, out int length, out var tail);
        Assert.Equal(parameters >= 16_384 && blocks != 2, !tail.IsEmpty);
        if (!tail.IsEmpty) Assert.True(tail.Span.Overlaps(reply.Blocks[^1].GradientSum.Span)); // not a copy
        var payload = Payload(frame, length, tail, 9, StepFrames.Reply, reply.CalculateSize());
        Assert.Equal(reply, ComputeReply.Parser.ParseFrom(payload.Span));
        var read = StepWire.ParseReply(new System.Buffers.ReadOnlySequence<byte>(payload));
        Assert.Equal(reply, read);
        StepWire.ReturnSums(read);
    }

    /// <summary>The bytes on the wire (the rented frame, returned, then the tail): its header checked, its payload.</summary>
    private static Memory<byte> Payload(byte[] frame, int length, ReadOnlyMemory<byte> tail, long id, byte kind, int size)
    {
        byte[] wire = [.. frame.AsSpan(0, length), .. tail.Span];
        System.Buffers.ArrayPool<byte>.Shared.Return(frame);
        Assert.Equal(size, wire.Length - StepFrames.HeaderBytes);
        Assert.Equal(size, System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(wire));
        Assert.Equal(id, System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(wire.AsSpan(4)));
        Assert.Equal(kind, wire[12]);
        return wire.AsMemory(StepFrames.HeaderBytes);
    }

    private static ComputeReply Reply(int parameters) => new()
    {
        ProtocolVersion = Protocol.Version, Step = 7, ComputeSeconds = 0.25, ComputeCpuSeconds = 0.125,
        Blocks =
        {
            new BlockResult { FirstShard = 0, ShardCount = 2, GradientSum = WireArrays.Wrap(Floats(parameters, 2)),
                ShardLoss = { 1.5, 2.5 }, ShardCorrect = { 3, 4 }, ShardSamples = { 25, 25 } },
            new BlockResult { FirstShard = 2, ShardCount = 1, ClaimedElsewhere = new ClaimedElsewhere() },
            new BlockResult { FirstShard = 3, ShardCount = 1, GradientSum = WireArrays.Wrap(Floats(parameters, 3)),
                ShardLoss = { 0.5 }, ShardCorrect = { 1 }, ShardSamples = { 25 } },
        },
    };

    [Theory]
    [InlineData(WireBuffers.MinPooledFloats)] // pooled
    [InlineData(WireBuffers.MinPooledFloats - 1)] // too small to pool: plain copies
    [InlineData(235_146)]
    public void RequestsAndRepliesReadAsTheGeneratedParserReadsThem(int parameters)
    {
        var request = Request(parameters);
        byte[] requestBytes = Serialize(StepWire.RequestMarshaller, request);
        Assert.Equal(request.ToByteArray(), requestBytes);
        var before = WireBuffers.Counts;
        var readRequest = Deserialize(StepWire.RequestMarshaller, requestBytes);
        Assert.Equal(ComputeRequest.Parser.ParseFrom(requestBytes), readRequest);
        Assert.Equal(request, readRequest);

        var reply = Reply(parameters);
        byte[] replyBytes = Serialize(StepWire.ReplyMarshaller, reply);
        Assert.Equal(reply.ToByteArray(), replyBytes);
        var readReply = Deserialize(StepWire.ReplyMarshaller, replyBytes);
        Assert.Equal(ComputeReply.Parser.ParseFrom(replyBytes), readReply);
        // Three big fields were read: into rented arrays when they are worth pooling.
        int pooled = parameters >= WireBuffers.MinPooledFloats ? 3 : 0;
        Assert.Equal(pooled, WireBuffers.Counts.Rented - before.Rented);
        WireBuffers.Return(readRequest.Weights);
        foreach (var block in readReply.Blocks) WireBuffers.Return(block.GradientSum);
    }

    [Fact]
    public void ReturnedArraysServeTheNextMessageAndAreReturnedOnlyOnce()
    {
        const int parameters = 50_000;
        byte[] bytes = Serialize(StepWire.RequestMarshaller, Request(parameters));
        var first = Deserialize(StepWire.RequestMarshaller, bytes);
        WireBuffers.Return(first.Weights);
        WireBuffers.Return(first.Weights); // twice: a no-op the second time
        var before = WireBuffers.Counts;
        var second = Deserialize(StepWire.RequestMarshaller, bytes);
        var third = Deserialize(StepWire.RequestMarshaller, bytes);
        var after = WireBuffers.Counts;
        Assert.Equal(2, after.Rented - before.Rented);
        // One of them reused the returned array, the other needed a new one: two live messages never share an array.
        Assert.Equal(1, after.Allocated - before.Allocated);
        Assert.Equal(second.Weights, third.Weights);
        Assert.False(second.Weights.Memory.Span.Overlaps(third.Weights.Memory.Span));
    }

    [Fact]
    public void TakingAWholePooledSumHandsOverItsArrayOnce()
    {
        const int parameters = 50_021; // a length no other test pools
        var sum = WireBuffers.Rent(parameters);
        var wrapped = WireBuffers.Wrap(sum);
        Assert.Null(WireBuffers.Take(wrapped, parameters - 1)); // another length
        Assert.Null(WireBuffers.Take(WireBuffers.Wrap(WireBuffers.Rent(parameters), 4 * parameters - 4), parameters - 1)); // a part
        Assert.Null(WireBuffers.Take(ByteString.CopyFrom(new byte[4 * parameters]), parameters)); // not pooled
        Assert.Same(sum, WireBuffers.Take(wrapped, parameters));
        Assert.Null(WireBuffers.Take(wrapped, parameters)); // once
        // Taken: returning the message's bytes gives nothing back to the pool (which holds at most MaxPerLength).
        WireBuffers.Return(wrapped);
        for (int i = 0; i <= WireBuffers.MaxPerLength; i++) Assert.NotSame(sum, WireBuffers.Rent(parameters));
    }

    [Fact]
    public void BigFieldsInAnyOrderRepeatedOrOfOddLengthReadAsProtobufReadsThem()
    {
        var big = Floats(10_000, 4);
        var writer = new MemoryStream();
        var output = new CodedOutputStream(writer);
        // weights first, then the other fields, then weights again (the last one wins), then a length not a
        // multiple of 4, which is no float vector (kept as plain bytes, for the validation to refuse).
        output.WriteTag(ComputeRequest.WeightsFieldNumber, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(WireArrays.Wrap(big));
        output.WriteTag(ComputeRequest.StepFieldNumber, WireFormat.WireType.Varint);
        output.WriteInt64(-1);
        output.WriteTag(ComputeRequest.WeightsFieldNumber, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(ByteString.CopyFrom(new byte[40_001]));
        output.WriteTag(99, WireFormat.WireType.Fixed64); // an unknown field is kept as the generated parser keeps it
        output.WriteFixed64(5);
        output.Flush();
        byte[] bytes = writer.ToArray();
        var read = Deserialize(StepWire.RequestMarshaller, bytes);
        Assert.Equal(ComputeRequest.Parser.ParseFrom(bytes), read);
        Assert.Equal(40_001, read.Weights.Length);
        Assert.Equal(-1, read.Step);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void WeightsAndATicketOnTheWireLeaveTheLaterOneAsTheGeneratedParserDoes(bool ticketLast)
    {
        // weights and weights_ticket are a oneof: whichever comes last is the request's source of weights.
        var weights = new ComputeRequest { Weights = WireArrays.Wrap(Floats(10_000, 5)) }.ToByteArray();
        var ticket = new ComputeRequest { Step = 3, WeightsTicket = ByteString.CopyFrom(new byte[16]) }.ToByteArray();
        byte[] bytes = ticketLast ? [.. weights, .. ticket] : [.. ticket, .. weights];
        var read = Deserialize(StepWire.RequestMarshaller, bytes);
        Assert.Equal(ComputeRequest.Parser.ParseFrom(bytes), read);
        Assert.Equal(ticketLast ? ComputeRequest.WeightsSourceOneofCase.WeightsTicket : ComputeRequest.WeightsSourceOneofCase.Weights,
            read.WeightsSourceCase);
        Assert.Equal(3, read.Step);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void WeightsAndSharedMemoryOnTheWireLeaveTheLaterOneAsTheGeneratedParserDoes(bool sharedLast)
    {
        // shared_memory is the third member of the weights' oneof.
        var weights = new ComputeRequest { Weights = WireArrays.Wrap(Floats(10_000, 5)) }.ToByteArray();
        var shared = new ComputeRequest { Step = 3, SharedMemory = new SharedStep { Indices = true, ClaimPool = 2 } }.ToByteArray();
        byte[] bytes = sharedLast ? [.. weights, .. shared] : [.. shared, .. weights];
        var read = Deserialize(StepWire.RequestMarshaller, bytes);
        Assert.Equal(ComputeRequest.Parser.ParseFrom(bytes), read);
        Assert.Equal(sharedLast ? ComputeRequest.WeightsSourceOneofCase.SharedMemory : ComputeRequest.WeightsSourceOneofCase.Weights,
            read.WeightsSourceCase);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void ABlockWithASumAndAnotherPlaceForItLeavesTheLaterOneAsTheGeneratedParserDoes(bool claimed, bool sumLast)
    {
        // A block's sum is a oneof: in the reply, in a shared slot, or claimed elsewhere; whichever comes last holds.
        var sum = new BlockResult { FirstShard = 1, ShardCount = 1, GradientSum = WireArrays.Wrap(Floats(10_000, 2)) }.ToByteArray();
        var other = (claimed ? new BlockResult { ClaimedElsewhere = new ClaimedElsewhere() } : new BlockResult { InSharedSlot = new SumInSlot() })
            .ToByteArray();
        byte[] block = sumLast ? [.. other, .. sum] : [.. sum, .. other];
        var bytes = new ComputeReply { Step = 4 }.ToByteArray()
            .Concat(new byte[] { 0x1A }).Concat(Varint(block.Length)).Concat(block).ToArray();
        var read = Deserialize(StepWire.ReplyMarshaller, bytes);
        Assert.Equal(ComputeReply.Parser.ParseFrom(bytes), read);
        var expected = sumLast ? BlockResult.SumOneofCase.GradientSum
            : claimed ? BlockResult.SumOneofCase.ClaimedElsewhere : BlockResult.SumOneofCase.InSharedSlot;
        Assert.Equal(expected, read.Blocks.Single().SumCase);
    }

    private static byte[] Varint(int value)
    {
        var bytes = new List<byte>();
        for (; value >= 0x80; value >>= 7) bytes.Add((byte)(value & 0x7F | 0x80));
        bytes.Add((byte)value);
        return [.. bytes];
    }

    [Theory]
    [InlineData(new byte[] { 0x22, 0x80, 0x80, 0x04 })] // weights promising 64 KiB that are not there
    [InlineData(new byte[] { 0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01 })] // an 11-byte varint
    [InlineData(new byte[] { 0x23 })] // a group
    [InlineData(new byte[] { 0x1A, 0x05, 0x1A, 0x10, 0x00 })] // a block whose gradient promises more than the block holds
    public void MalformedPayloadsFailAsWithTheGeneratedParser(byte[] payload)
    {
        Exception? expected = null, actual = null;
        try { ComputeReply.Parser.ParseFrom(payload); } catch (InvalidProtocolBufferException e) { expected = e; }
        try { Deserialize(StepWire.ReplyMarshaller, payload); } catch (InvalidProtocolBufferException e) { actual = e; }
        try { Deserialize(StepWire.RequestMarshaller, payload); } catch (InvalidProtocolBufferException) { }
        Assert.Equal(expected is null, actual is null);
    }
}

/// <summary>A byte array as a ReadOnlySequence of several segments.</summary>
internal sealed class Segments : System.Buffers.ReadOnlySequenceSegment<byte>
{
    private Segments(ReadOnlyMemory<byte> memory, long index)
    {
        Memory = memory;
        RunningIndex = index;
    }

    public static System.Buffers.ReadOnlySequence<byte> Of(byte[] bytes, int parts)
    {
        if (bytes.Length < parts) return new System.Buffers.ReadOnlySequence<byte>(bytes);
        int size = bytes.Length / parts;
        var first = new Segments(bytes.AsMemory(0, size), 0);
        var last = first;
        for (int p = 1; p < parts; p++)
        {
            int start = p * size, end = p == parts - 1 ? bytes.Length : start + size;
            var next = new Segments(bytes.AsMemory(start, end - start), start);
            last.Next = next;
            last = next;
        }
        return new System.Buffers.ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }
}
