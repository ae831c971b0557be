// IWorkerClient over a gRPC channel to one worker, with message limits derived from the model and HTTP/2 windows
// large enough that a weights message is not throttled by flow control on every step; the node's security (token,
// TLS) and the worker's session secret apply to every call.
using DistTrain.Protos;
using DistTrain.Protos.Security;
using Google.Protobuf;
using Grpc.Net.Client;

namespace DistTrain.Coordinator.Distributed;

public sealed class GrpcWorkerClient : IWorkerClient
{
    private readonly GrpcChannel _channel;
    private readonly Protos.Worker.WorkerClient _client;
    private readonly Grpc.Core.CallInvoker _invoker;

    public GrpcWorkerClient(string address, long maxSendBytes, long maxReceiveBytes, NodeSecurity security, WorkerSessions sessions)
    {
        var handler = new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = true,
            InitialHttp2StreamWindowSize = 8 << 20,
            KeepAlivePingDelay = TimeSpan.FromSeconds(30),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(20),
            ConnectTimeout = TimeSpan.FromSeconds(10),
        };
        _channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            HttpHandler = sessions.HandlerFor(address, security, handler),
            DisposeHttpClient = true,
            // Requests carry the weights; a dataset goes in chunks, which may be larger than a small model's request.
            MaxSendMessageSize = MessageLimits.ToOption(Math.Max(maxSendBytes, Protocol.DatasetChunkBytes + MessageLimits.Slack)),
            MaxReceiveMessageSize = MessageLimits.ToOption(maxReceiveBytes),
        });
        _invoker = _channel.CreateCallInvoker();
        _client = new Protos.Worker.WorkerClient(_invoker);
    }

    public async Task<PrepareReply> PrepareAsync(PrepareRequest request, DateTime deadline, CancellationToken cancellationToken) =>
        await _client.PrepareAsync(request, deadline: deadline, cancellationToken: cancellationToken);

    public async Task<ReceiveDatasetReply> SendDatasetAsync(string fingerprint, ReadOnlyMemory<byte> payload,
        DateTime deadline, CancellationToken cancellationToken)
    {
        using var call = _client.ReceiveDataset(deadline: deadline, cancellationToken: cancellationToken);
        for (int offset = 0; offset < payload.Length; offset += Protocol.DatasetChunkBytes)
        {
            int length = Math.Min(Protocol.DatasetChunkBytes, payload.Length - offset);
            await call.RequestStream.WriteAsync(new DatasetChunk
            {
                ProtocolVersion = Protocol.Version,
                DatasetFingerprint = offset == 0 ? fingerprint : "",
                TotalBytes = offset == 0 ? payload.Length : 0,
                Offset = offset,
                Data = UnsafeByteOperations.UnsafeWrap(payload.Slice(offset, length)),
            }, cancellationToken);
        }
        await call.RequestStream.CompleteAsync();
        return await call;
    }

    /// <summary>ComputeGradients with StepWire's marshallers: the reply's gradient sums arrive in pooled arrays.</summary>
    public async Task<ComputeReply> ComputeAsync(ComputeRequest request, DateTime deadline, CancellationToken cancellationToken) =>
        await _invoker.AsyncUnaryCall(StepWire.ComputeGradients, null, new Grpc.Core.CallOptions(deadline: deadline, cancellationToken: cancellationToken), request);

    public void Dispose() => _channel.Dispose();
}
