// Fetches a step's weights from the coordinator (Coordinator.FetchWeights) for a ComputeGradients request that carried
// a ticket instead of them: the megabyte then travels in a reply of the coordinator's server to this client, the
// faster direction of .NET's HTTP/2, read straight into a pooled array (StepWire). The channel is this worker's own,
// with the node's token and TLS, and a flow-control window that lets a whole weights message arrive without stalls.
using DistTrain.Protos;
using DistTrain.Protos.Security;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace DistTrain.Worker;

public sealed class CoordinatorWeights : IDisposable
{
    /// <summary>A fetch that has not answered in this long fails its request (the coordinator retries elsewhere).</summary>
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    private readonly Lazy<GrpcChannel> _channel;

    public CoordinatorWeights(WorkerOptions options, NodeSecurity security)
    {
        _channel = new Lazy<GrpcChannel>(() => GrpcChannel.ForAddress(options.Coordinator, new GrpcChannelOptions
        {
            HttpHandler = security.CreateClientHandler(new SocketsHttpHandler
            {
                InitialHttp2StreamWindowSize = 8 << 20,
                KeepAlivePingDelay = TimeSpan.FromSeconds(30),
                KeepAlivePingTimeout = TimeSpan.FromSeconds(20),
                ConnectTimeout = TimeSpan.FromSeconds(10),
            }),
            DisposeHttpClient = true,
            MaxReceiveMessageSize = options.MaxMessageBytes,
            MaxSendMessageSize = 64 * 1024,
        }));
    }

    /// <summary>The weights of <paramref name="step"/> (in a pooled array: WireBuffers.Return them after use).</summary>
    public async Task<ByteString> FetchAsync(long step, ByteString ticket, CancellationToken cancellationToken)
    {
        var invoker = _channel.Value.CreateCallInvoker();
        FetchWeightsReply reply;
        try
        {
            reply = await invoker.AsyncUnaryCall(StepWire.FetchWeights, null,
                new CallOptions(deadline: DateTime.UtcNow + Deadline, cancellationToken: cancellationToken),
                new FetchWeightsRequest { ProtocolVersion = Protocol.Version, Step = step, Ticket = ticket });
        }
        catch (RpcException e) when (e.StatusCode != StatusCode.Cancelled)
        {
            // The coordinator's answer (a stale ticket) or the link's failure, as this request's status.
            throw new RpcException(new Status(StatusCode.Aborted,
                $"fetching the weights of step {step} from the coordinator failed: {e.StatusCode}: {PeerText.Printable(e.Status.Detail)}"));
        }
        if (reply.ProtocolVersion != Protocol.Version || reply.Step != step)
        {
            WireBuffers.Return(reply.Weights);
            throw new RpcException(new Status(StatusCode.Aborted,
                $"the coordinator answered the weights fetch of step {step} with step {reply.Step} (protocol {reply.ProtocolVersion})"));
        }
        return reply.Weights;
    }

    public void Dispose()
    {
        if (_channel.IsValueCreated) _channel.Value.Dispose();
    }
}
