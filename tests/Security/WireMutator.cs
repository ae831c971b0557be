// Hostile gRPC requests from valid ones: the serialized message damaged (byte edits, bit flips, truncation, random
// bytes, an injected field with a huge length) and the 5-byte gRPC frame around it lied about (a length larger than
// the body, near 2 GiB, the compressed flag without an encoding, a cut-off prefix, two messages for a unary call).
using System.Buffers.Binary;
using DistTrain.Core.Data;

namespace DistTrain.Tests.Security;

public static class WireMutator
{
    public static byte[] MutateMessage(byte[] valid, DeterministicRandom rng)
    {
        switch (rng.NextInt(6))
        {
            case 0:
                return RandomBytes(rng, rng.NextInt(300));
            case 1:
                return valid[..rng.NextInt(valid.Length + 1)];
            case 2:
            {
                var flipped = (byte[])valid.Clone();
                int flips = 1 + rng.NextInt(16);
                for (int i = 0; i < flips && flipped.Length > 0; i++) flipped[rng.NextInt(flipped.Length)] ^= (byte)(1 << rng.NextInt(8));
                return flipped;
            }
            case 3:
            {
                // A length-delimited field (wire type 2) whose length varint promises far more than follows.
                int at = rng.NextInt(valid.Length + 1), field = 1 + rng.NextInt(8);
                byte[] huge = [(byte)((field << 3) | 2), 0xFF, 0xFF, 0xFF, 0xFF, (byte)(rng.NextInt(2) == 0 ? 0x07 : 0x0F)];
                return [.. valid[..at], .. huge, .. RandomBytes(rng, rng.NextInt(16)), .. valid[at..]];
            }
            default:
                return Data.RobustnessTests.Mutate(valid, rng);
        }
    }

    /// <summary>The gRPC length-prefixed frame, honest three times in four.</summary>
    public static byte[] Frame(byte[] message, DeterministicRandom rng)
    {
        byte flag = 0;
        uint length = (uint)message.Length;
        switch (rng.NextInt(16))
        {
            case 0: length += 1 + (uint)rng.NextInt(1000); break;
            case 1: length = 0x7FFF_FFFF - (uint)rng.NextInt(16); break;
            case 2: flag = 1; break;
            case 3: return [.. Honest(message)[..rng.NextInt(5)]];
            default: return [.. Honest(message), .. (rng.NextInt(12) == 0 ? Honest(message) : [])];
        }
        var frame = new byte[5 + message.Length];
        frame[0] = flag;
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), length);
        message.CopyTo(frame, 5);
        return frame;
    }

    public static byte[] Honest(byte[] message)
    {
        var frame = new byte[5 + message.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)message.Length);
        message.CopyTo(frame, 5);
        return frame;
    }

    public static byte[] RandomBytes(DeterministicRandom rng, int count)
    {
        var bytes = new byte[count];
        for (int i = 0; i < count; i++) bytes[i] = (byte)rng.NextInt(256);
        return bytes;
    }
}
