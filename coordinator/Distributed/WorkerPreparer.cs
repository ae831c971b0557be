// Carries out the machine's Prepare commands: Prepare (model, data spec, fingerprint, the same-host and TCP link offers), streaming
// the dataset once when a worker lacks it, then Prepare again; the outcome goes back as an event (prepared, refused,
// unreachable) and a prepared worker's connection into WorkerConnections. Disconnect closes a life's connection.
using System.Text.Json;
using DistTrain.Coordinator.Control;
using DistTrain.Core.Data;
using DistTrain.Core.Training;
using DistTrain.Protos;
using Grpc.Core;

namespace DistTrain.Coordinator.Distributed;

public sealed class WorkerPreparer(
    ClusterOptions options, TrainingConfig config, int parameterCount, DataSplit data, string fingerprint,
    WorkerConnections connections, WorkerSessions sessions, Action<ClusterEvent> post, ClusterLog log, SharedMemoryHost? shared = null,
    TcpLinkHost? tcp = null)
    : IWorkerPreparation, IAsyncDisposable
{
    private readonly Lazy<byte[]> _payload = new(() => DatasetCodec.Encode(data));
    private readonly string _modelJson = JsonSerializer.Serialize(config.Model, TrainingConfig.Json);
    private readonly string _dataJson = JsonSerializer.Serialize(config.Data, TrainingConfig.Json);
    private readonly long _requestBytes = MessageLimits.RequestBytes(parameterCount, config.Training.BatchSize);
    private readonly long _replyBytes = MessageLimits.ReplyBytes(parameterCount,
        new ShardPlan(Math.Max(1, config.Training.BatchSize), config.Training.ShardSize).ShardCount);
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _preparing = [];

    public void Prepare(PrepareWorker command)
    {
        lock (_preparing)
        {
            _preparing.RemoveAll(t => t.IsCompleted);
            _preparing.Add(Task.Run(() => PrepareAsync(command, _stopping.Token)));
        }
    }

    /// <summary>Closes a life's connection, and its TCP step link with it (a worker that rejoins connects a new one).</summary>
    public void Disconnect(DisconnectWorker command)
    {
        if (connections.Remove(command.WorkerId, command.Generation)) tcp?.Close(command.WorkerId);
    }

    private async Task PrepareAsync(PrepareWorker worker, CancellationToken cancellationToken)
    {
        var client = new GrpcWorkerClient(worker.Address, _requestBytes, _replyBytes, options.Security, sessions);
        bool handedOver = false;
        try
        {
            (SharedMemoryOffer Offer, SharedSlots Slots)? offer = null;
            try { offer = shared?.ForWorker(worker.WorkerId, worker.Cores); }
            catch (IOException e) { log.Write($"worker {worker.WorkerId}: no shared memory offered: {e.Message}"); }
            var tcpOffer = tcp?.OfferFor(worker.WorkerId);
            var reply = await PrepareOnceAsync(client, worker, offer?.Offer, tcpOffer, cancellationToken);
            if (!reply.DataPresent)
            {
                log.Write($"worker {worker.WorkerId} lacks the data; sending it ({_payload.Value.Length / 1048576.0:F1} MiB)");
                await client.SendDatasetAsync(fingerprint, _payload.Value, DateTime.UtcNow + options.DatasetTimeout, cancellationToken);
                reply = await PrepareOnceAsync(client, worker, offer?.Offer, tcpOffer, cancellationToken);
                if (!reply.DataPresent)
                {
                    post(new WorkerRefused(worker.WorkerId, worker.Generation, "it did not keep the dataset it was sent"));
                    return;
                }
            }
            if (reply.ParameterCount != parameterCount)
            {
                post(new WorkerRefused(worker.WorkerId, worker.Generation,
                    $"it built a model with {reply.ParameterCount} parameters, expected {parameterCount}"));
                return;
            }
            var slots = reply.SharedMemory && offer is { } accepted ? accepted.Slots : null;
            var link = slots is not null && reply.StepLink ? shared!.LinkOf(worker.WorkerId) : null;
            // Where its compute threads run, when it bound them as offered (requests to it go last from a thread on them).
            var cpus = slots is not null && reply.CpuBinding.StartsWith("bound", StringComparison.Ordinal) ? offer!.Value.Offer.ComputeCpus.ToList() : null;
            link?.WaitOnCpus(cpus ?? []);
            var tcpLink = slots is null && reply.TcpLink ? tcp?.LinkOf(worker.WorkerId) : null;
            connections.Add(new WorkerConnection(worker.WorkerId, worker.Generation,
                (link ?? tcpLink) is { } stepLink ? new LinkedWorkerClient(client, stepLink, log.Write) : client, slots, cpus, tcpLink is not null));
            handedOver = true;
            string unshared = offer is null ? "" : $" (shared memory not used: {PeerText.Printable(reply.SharedMemoryNote)})";
            string transport = slots is not null
                ? $"weights and gradients through shared memory, steps over {(link is null ? "gRPC" : "the same-host link")}; compute threads {reply.CpuBinding}"
                : tcpLink is not null ? $"weights and gradients over the TCP step link{unshared}"
                : tcpOffer is not null ? $"weights and gradients over gRPC{unshared}; {(reply.TcpLink ? "its TCP step link closed" : PeerText.Printable(reply.TcpLinkNote))}"
                : $"weights and gradients over gRPC{unshared}";
            post(new WorkerPrepared(worker.WorkerId, worker.Generation, slots is not null, $"data: {PeerText.Printable(reply.DataSource)}; {transport}"));
        }
        catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Cancelled)
        {
            if (!cancellationToken.IsCancellationRequested)
                post(new WorkerUnreachable(worker.WorkerId, worker.Generation, $"{e.StatusCode}: {PeerText.Printable(e.Status.Detail)}"));
        }
        catch (RpcException e)
        {
            post(new WorkerRefused(worker.WorkerId, worker.Generation, $"{e.StatusCode}: {PeerText.Printable(e.Status.Detail)}"));
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested) { }
        finally
        {
            if (!handedOver) client.Dispose();
        }
    }

    private async Task<PrepareReply> PrepareOnceAsync(IWorkerClient client, PrepareWorker worker, SharedMemoryOffer? offer,
        TcpLinkOffer? tcpOffer, CancellationToken cancellationToken)
    {
        var reply = await client.PrepareAsync(new PrepareRequest
        {
            ProtocolVersion = Protocol.Version, ModelSpecJson = _modelJson, DataSpecJson = _dataJson,
            DatasetFingerprint = fingerprint, MaxRequestBytes = _requestBytes, WorkerId = worker.WorkerId, SharedMemory = offer,
            TcpLink = tcpOffer,
        }, DateTime.UtcNow + options.PrepareTimeout, cancellationToken);
        if (reply.ProtocolVersion != Protocol.Version)
            throw new RpcException(new Status(StatusCode.FailedPrecondition,
                $"the worker answered with protocol version {reply.ProtocolVersion}, expected {Protocol.Version}"));
        return reply;
    }

    /// <summary>Stops the preparations in progress and waits for them.</summary>
    public async ValueTask DisposeAsync()
    {
        _stopping.Cancel();
        Task[] preparing;
        lock (_preparing) preparing = [.. _preparing];
        await Task.WhenAll(preparing).ConfigureAwait(false);
        _stopping.Dispose();
    }
}
