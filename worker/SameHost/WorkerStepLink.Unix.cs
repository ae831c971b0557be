// The same-host step link's connection: the Unix-domain socket beside the shared files (the rest of the link is
// WorkerStepLink's, shared with the TCP link).
using System.Net.Sockets;
using DistTrain.Protos;

namespace DistTrain.Worker;

public sealed partial class WorkerStepLink
{
    /// <summary>Connects to the Unix-domain socket at <paramref name="path"/> and says hello (see <see cref="Hello"/>).</summary>
    public static WorkerStepLink ConnectUnix(string path, ReadOnlySpan<byte> nonce, string workerId,
        Func<ComputeRequest, ComputeReply> compute, int maxRequestBytes, ILogger log)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try { socket.Connect(new UnixDomainSocketEndPoint(path)); }
        catch
        {
            socket.Dispose();
            throw;
        }
        return Hello(new StepConnection(socket), nonce, workerId, compute, maxRequestBytes, log);
    }
}
