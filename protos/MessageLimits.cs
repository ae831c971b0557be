// Message size limits derived from the model, so a peer can never make the other allocate without bound:
// a request carries the weights and the batch's indices, a reply one gradient sum per block.
namespace DistTrain.Protos;

public static class MessageLimits
{
    /// <summary>Room for field tags, per-shard statistics and metadata beyond the big byte fields.</summary>
    public const int Slack = 64 * 1024;

    /// <summary>Most blocks one request may carry: a contiguous run of shards splits into at most 2·⌈log2 S⌉ aligned blocks.</summary>
    public static int MaxBlocksPerRequest(int shardCount) =>
        2 * (int)Math.Ceiling(Math.Log2(Math.Max(2, shardCount))) + 1;

    /// <summary>Bytes of the largest ComputeRequest: all weights plus every index of the batch.</summary>
    public static long RequestBytes(int parameterCount, int batchSize) =>
        4L * parameterCount + 4L * batchSize + Slack;

    /// <summary>
    /// Bytes of the largest ComputeReply: one float32 gradient sum per block, or on the 16-bit wire one bfloat16 vector
    /// per shard, plus per-shard statistics.
    /// </summary>
    public static long ReplyBytes(int parameterCount, int shardCount) =>
        Math.Max(4L * MaxBlocksPerRequest(shardCount), 2L * shardCount) * parameterCount + 24L * shardCount + Slack;

    /// <summary>Clamps a byte count to what gRPC's int-typed options accept.</summary>
    public static int ToOption(long bytes) => (int)Math.Min(int.MaxValue, bytes);
}
