// Constants both ends of the wire agree on, and the one place that checks a peer speaks the same protocol.
using Grpc.Core;

namespace DistTrain.Protos;

public static class Protocol
{
    /// <summary>Bumped whenever a message's meaning changes; carried in every request and reply.</summary>
    public const uint Version = 6; // 6: the same-host alternatives are oneofs (SharedStep, a block's sum)

    /// <summary>Dataset chunks are small enough to keep memory flat on both ends and large enough to stream fast.</summary>
    public const int DatasetChunkBytes = 1 << 20;

    /// <summary>
    /// Largest claim_pool id a request may name (a pool's id shares a 64-bit counter with a 24-bit block index in the
    /// planes that keep pools: SharedWeights).
    /// </summary>
    public const long MaxClaimPool = (1L << 39) - 1;

    /// <summary>Throws FailedPrecondition unless <paramref name="peerVersion"/> is ours: mixing versions is never safe.</summary>
    public static void Check(uint peerVersion, string what)
    {
        if (peerVersion != Version)
            throw new RpcException(new Status(StatusCode.FailedPrecondition,
                $"{what}: protocol version {peerVersion} is not supported; this build speaks version {Version}"));
    }

    static Protocol()
    {
        // The wire format is little-endian float32/int32 read in place; a big-endian host would misread it.
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("DistTrain's wire format needs a little-endian host");
    }
}
