// The Worker gRPC service: a thin adapter from the wire to WorkerSession (and RunMembership for EndRun). Status codes
// come from those; anything unexpected is logged and reported as Internal rather than taking the process down.
// Every call is first checked to come from the coordinator this worker registered with (CoordinatorCredential).
using DistTrain.Protos;
using Grpc.Core;

namespace DistTrain.Worker;

[BindServiceMethod(typeof(WorkerService), nameof(BindService))]
public sealed class WorkerService(WorkerSession session, RunMembership membership, CoordinatorCredential credential,
    ILogger<WorkerService> log) : Protos.Worker.WorkerBase
{
    public override Task<PrepareReply> Prepare(PrepareRequest request, ServerCallContext context) =>
        Guard("Prepare", context, () => session.PrepareAsync(request, context.CancellationToken));

    public override Task<ReceiveDatasetReply> ReceiveDataset(IAsyncStreamReader<DatasetChunk> requestStream,
        ServerCallContext context) =>
        Guard("ReceiveDataset", context, async () => new ReceiveDatasetReply
        {
            ProtocolVersion = Protocol.Version,
            BytesReceived = await session.ReceiveDatasetAsync(requestStream, context.CancellationToken),
        });

    /// <summary>
    /// The generated binding with ComputeGradients on StepWire's marshallers (the same method on the wire; its weights
    /// arrive in pooled arrays and its sums are written from them).
    /// </summary>
    public static void BindService(ServiceBinderBase binder, Protos.Worker.WorkerBase? service) =>
        Protos.Worker.BindService(new StepWireBinder(binder), service);

    private sealed class StepWireBinder(ServiceBinderBase inner) : ServiceBinderBase
    {
        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse>? handler)
        {
            if (method.FullName == StepWire.ComputeGradients.FullName && StepWire.ComputeGradients is Method<TRequest, TResponse> lean)
                inner.AddMethod(lean, handler);
            else
                inner.AddMethod(method, handler);
        }

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse>? handler) =>
            inner.AddMethod(method, handler);

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse>? handler) =>
            inner.AddMethod(method, handler);

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse>? handler) =>
            inner.AddMethod(method, handler);
    }

    public override Task<ComputeReply> ComputeGradients(ComputeRequest request, ServerCallContext context) =>
        Guard("ComputeGradients", context, () => session.ComputeAsync(request, context.CancellationToken));

    public override Task<StatusReply> Status(StatusRequest request, ServerCallContext context) =>
        Guard("Status", context, () => Task.FromResult(session.Status(request)));

    public override Task<EndRunReply> EndRun(EndRunRequest request, ServerCallContext context) =>
        Guard("EndRun", context, () => Task.FromResult(membership.Accept(request)));

    private async Task<T> Guard<T>(string method, ServerCallContext context, Func<Task<T>> call)
    {
        try
        {
            credential.Check(context);
            return await call();
        }
        catch (RpcException e)
        {
            if (e.StatusCode != StatusCode.Cancelled) log.LogWarning("{Method} refused: {Status} {Detail}", method, e.StatusCode, e.Status.Detail);
            throw;
        }
        catch (OperationCanceledException)
        {
            throw new RpcException(new Status(StatusCode.Cancelled, $"{method} was cancelled"));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            log.LogError(e, "{Method} failed", method);
            throw new RpcException(new Status(StatusCode.Internal, $"{method} failed on the worker: {e.Message}"));
        }
    }
}
