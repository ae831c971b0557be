// Raw HTTP/2 below gRPC: connections that send the client preface (sometimes damaged) and then frames of random
// type, flags and stream, with lengths that lie (up to 16 MiB promised) and random payloads, and hang up. Kestrel
// must close such connections without disturbing others.
using System.Net;
using System.Net.Sockets;
using DistTrain.Core.Data;

namespace DistTrain.Tests.Security;

public static class Http2FrameFuzzer
{
    private static readonly byte[] Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray();

    /// <summary>Sends <paramref name="connections"/> connections of 1..16 frames each to 127.0.0.1; returns the frames sent.</summary>
    public static async Task<int> RunAsync(int port, int connections, DeterministicRandom rng)
    {
        int frames = 0;
        for (int c = 0; c < connections; c++)
        {
            var bytes = new List<byte>(rng.NextInt(10) == 0 ? Data.RobustnessTests.Mutate(Preface, rng) : Preface);
            // A valid empty SETTINGS frame first in most connections, so later frames reach the frame parser proper.
            if (rng.NextInt(4) != 0) bytes.AddRange(new byte[] { 0, 0, 0, 4, 0, 0, 0, 0, 0 });
            int count = 1 + rng.NextInt(16);
            for (int f = 0; f < count; f++, frames++) bytes.AddRange(RandomFrame(rng));
            using var client = new TcpClient { SendTimeout = 2000, ReceiveTimeout = 200, LingerState = new LingerOption(true, 0) };
            try
            {
                await client.ConnectAsync(IPAddress.Loopback, port);
                await client.GetStream().WriteAsync(bytes.ToArray());
                // Read whatever the server answers (SETTINGS, GOAWAY) briefly, as a real peer would.
                using var read = new CancellationTokenSource(TimeSpan.FromMilliseconds(5));
                try { _ = await client.GetStream().ReadAsync(new byte[4096], read.Token); }
                catch (OperationCanceledException) { }
            }
            catch (Exception e) when (e is IOException or SocketException) { }
        }
        return frames;
    }

    private static byte[] RandomFrame(DeterministicRandom rng)
    {
        byte[] payload = WireMutator.RandomBytes(rng, rng.NextInt(64));
        int type = rng.NextInt(12) == 0 ? rng.NextInt(256) : rng.NextInt(10);
        int length = rng.NextInt(8) == 0 ? rng.NextInt(1 << 24) : payload.Length;
        uint stream = rng.NextInt(3) switch { 0 => 0u, 1 => (uint)(1 + 2 * rng.NextInt(8)), _ => (uint)rng.NextUInt64() };
        return
        [
            (byte)(length >> 16), (byte)(length >> 8), (byte)length, (byte)type, (byte)rng.NextInt(256),
            (byte)(stream >> 24), (byte)(stream >> 16), (byte)(stream >> 8), (byte)stream, .. payload,
        ];
    }
}
