// The worker's request check as a pure function: each malformed or unservable request gets the status and the message
// that name its problem, before anything is fetched or computed; a valid request becomes the work it describes.
using DistTrain.Protos;
using DistTrain.Worker;
using Google.Protobuf;
using Grpc.Core;

namespace DistTrain.Tests.Distributed;

public class StepRequestCheckTests
{
    private const int Parameters = 10, Samples = 50;
    private static readonly StepContext Grpc = new(Parameters, Samples, SharedSlots: null, SharedIndexCapacity: 0, CanFetch: true);
    private static readonly StepContext Shared = new(Parameters, Samples, SharedSlots: 4, SharedIndexCapacity: 20, CanFetch: true);

    private static ByteString Ints(params int[] values) => WireArrays.Copy(values);

    /// <summary>A valid request over gRPC: 12 samples in shards of 3 (4 shards), as two aligned blocks.</summary>
    private static ComputeRequest Valid() => new()
    {
        ProtocolVersion = Protocol.Version, Step = 7, WeightsVersion = 7, Weights = ByteString.CopyFrom(new byte[4 * Parameters]),
        BatchSize = 12, ShardSize = 3,
        Blocks =
        {
            new BlockRange { FirstShard = 0, ShardCount = 2, SampleIndices = Ints(0, 1, 2, 3, 4, 5) },
            new BlockRange { FirstShard = 2, ShardCount = 2, SampleIndices = Ints(49, 48, 47, 46, 45, 44) },
        },
    };

    [Fact]
    public void AValidRequestBecomesTheWorkItDescribes()
    {
        var work = StepRequestCheck.Check(Valid(), Grpc);
        Assert.Equal(7, work.Step);
        Assert.Equal(4, work.Plan.ShardCount);
        Assert.Equal([(0, 2), (2, 2)], work.Blocks);
        Assert.Equal([0, 1, 2, 3, 4, 5, 49, 48, 47, 46, 45, 44], work.Batch!);
        Assert.Equal(WeightsSource.Request, work.Weights);
        Assert.False(work.Bf16);

        var fetch = Valid();
        fetch.WeightsTicket = ByteString.CopyFrom(new byte[16]);
        Assert.True(fetch.Weights.IsEmpty); // one source of weights: the ticket replaced them
        fetch.NextWeightsTicket = ByteString.CopyFrom(new byte[16]);
        fetch.Wire = WirePrecision.Bfloat16;
        work = StepRequestCheck.Check(fetch, Grpc);
        Assert.Equal(WeightsSource.Fetch, work.Weights);
        Assert.True(work.Encoded);
        Assert.Equal(2 * Parameters, work.WeightBytes(Parameters));

        var shared = Valid();
        shared.SharedMemory = new SharedStep { Indices = true };
        Assert.True(shared.Weights.IsEmpty); // one source of weights: the shared file replaced them
        shared.Wire = WirePrecision.Bfloat16;
        foreach (var block in shared.Blocks) block.SampleIndices = ByteString.Empty;
        shared.Blocks[0].SharedSlot = 3;
        shared.Blocks[1].SharedSlot = 1;
        work = StepRequestCheck.Check(shared, Shared);
        Assert.True(work.SharedMemory);
        Assert.Null(work.Batch);
        Assert.Equal([3, 1], work.Slots);
        Assert.True(work.Bf16);
        Assert.False(work.Encoded); // shared memory stays float32
    }

    public static TheoryData<string, StatusCode, string> Malformed => new()
    {
        { "protocol", StatusCode.FailedPrecondition, "protocol" },
        { "unprepared", StatusCode.FailedPrecondition, "has not been prepared" },
        { "weights version", StatusCode.FailedPrecondition, "weights version 6 does not match step 7" },
        { "shared not accepted", StatusCode.FailedPrecondition, "did not accept it in Prepare" },
        { "pool id", StatusCode.InvalidArgument, "shared_memory.claim_pool must be 0..549755813887, found -1" },
        { "wire", StatusCode.InvalidArgument, "wire must be" },
        { "shared indices beyond the file", StatusCode.InvalidArgument, "the shared weights file holds 20 indices, fewer than batch_size 24" },
        { "long ticket", StatusCode.InvalidArgument, "weights_ticket has 65 bytes, expected 1..64" },
        { "empty ticket", StatusCode.InvalidArgument, "weights_ticket has 0 bytes, expected 1..64" },
        { "next ticket alone", StatusCode.InvalidArgument, "next_weights_ticket is set but the request has no weights_ticket" },
        { "cannot fetch", StatusCode.FailedPrecondition, "cannot fetch weights" },
        { "short weights", StatusCode.InvalidArgument, "weights has 39 bytes, expected 40 (10 float32)" },
        { "batch", StatusCode.InvalidArgument, "batch_size 51 exceeds the dataset's 50 samples" },
        { "no blocks", StatusCode.InvalidArgument, "a request must name 1..5 blocks, found 0" },
        { "unaligned", StatusCode.InvalidArgument, "block [1, +2) is not an aligned block of 4 shards" },
        { "overlap", StatusCode.InvalidArgument, "shard 0 is named by two blocks" },
        { "index count", StatusCode.InvalidArgument, "block at shard 2 carries 20 index bytes, expected 24" },
        { "index range", StatusCode.InvalidArgument, "sample index 50 is outside the dataset's 0..49" },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public void EachProblemIsNamedWithItsStatus(string problem, StatusCode code, string message)
    {
        var request = Valid();
        StepContext? context = Grpc;
        switch (problem)
        {
            case "protocol": request.ProtocolVersion = Protocol.Version + 1; break;
            case "unprepared": context = null; break;
            case "weights version": request.WeightsVersion = 6; break;
            case "shared not accepted": request.SharedMemory = new SharedStep(); break;
            case "pool id":
                request.SharedMemory = new SharedStep { ClaimPool = -1 };
                context = Shared;
                break;
            case "wire": request.Wire = (WirePrecision)9; break;
            case "shared indices beyond the file":
                request.SharedMemory = new SharedStep { Indices = true };
                request.BatchSize = 24;
                context = Shared;
                break;
            case "long ticket":
                request.WeightsTicket = ByteString.CopyFrom(new byte[65]);
                break;
            case "empty ticket": request.WeightsTicket = ByteString.Empty; break;
            case "next ticket alone": request.NextWeightsTicket = ByteString.CopyFrom(new byte[16]); break;
            case "cannot fetch":
                request.WeightsTicket = ByteString.CopyFrom(new byte[16]);
                context = Grpc with { CanFetch = false };
                break;
            case "short weights": request.Weights = ByteString.CopyFrom(new byte[39]); break;
            case "batch": request.BatchSize = 51; break;
            case "no blocks": request.Blocks.Clear(); break;
            case "unaligned": request.Blocks[1].FirstShard = 1; break;
            case "overlap": request.Blocks[1].FirstShard = 0; break;
            case "index count": request.Blocks[1].SampleIndices = Ints(1, 2, 3, 4, 5); break;
            case "index range": request.Blocks[1].SampleIndices = Ints(1, 2, 3, 4, 5, 50); break;
            default: throw new ArgumentException(problem);
        }
        var e = Assert.Throws<RpcException>(() => StepRequestCheck.Check(request, context));
        Assert.Equal(code, e.StatusCode);
        Assert.Contains(message, e.Status.Detail);
    }

    [Fact]
    public void SharedSlotsAreInRangeAndUsedOnce()
    {
        var request = Valid();
        request.SharedMemory = new SharedStep();
        request.Blocks[0].SharedSlot = 2;
        request.Blocks[1].SharedSlot = 2;
        var e = Assert.Throws<RpcException>(() => StepRequestCheck.Check(request, Shared));
        Assert.Contains("names shared slot 2; slots are 0..3, each once", e.Status.Detail);
        request.Blocks[1].SharedSlot = 4;
        e = Assert.Throws<RpcException>(() => StepRequestCheck.Check(request, Shared));
        Assert.Contains("names shared slot 4", e.Status.Detail);
        request.Blocks[1].SharedSlot = 0;
        request.SharedMemory.Indices = true;
        e = Assert.Throws<RpcException>(() => StepRequestCheck.Check(request, Shared));
        Assert.Contains("carries indices but the request says they are in shared memory", e.Status.Detail);
        request.BatchSize = 24;
        e = Assert.Throws<RpcException>(() => StepRequestCheck.Check(request, Shared));
        Assert.Contains("holds 20 indices, fewer than batch_size 24", e.Status.Detail);
    }
}
