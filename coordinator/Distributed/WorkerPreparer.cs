// Carries out the machine's Prepare commands: Prepare (model, data spec, fingerprint, the bulk plane's and TCP link's offers), streaming
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
    WorkerConnections connections, WorkerSessions sessions, Action<ClusterEvent> post, ClusterLog log, IBulkPlane? bulk = null,
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
            IBulkOffer? offer = null;
            try { offer = bulk?.OfferFor(worker.WorkerId, worker.Cores); }
            catch (IOException e) { log.Write($"worker {worker.WorkerId}: no {bulk!.Name} offered: {e.Message}"); }
            var tcpOffer = tcp?.OfferFor(worker.WorkerId);
            var reply = await PrepareOnceAsync(client, worker, offer, tcpOffer, cancellationToken);
            if (!reply.DataPresent)
            {
                log.Write($"worker {worker.WorkerId} lacks the data; sending it ({_payload.Value.Length / 1048576.0:F1} MiB)");
                await client.SendDatasetAsync(fingerprint, _payload.Value, DateTime.UtcNow + options.DatasetTimeout, cancellationToken);
                reply = await PrepareOnceAsync(client, worker, offer, tcpOffer, cancellationToken);
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
            var member = offer?.Accept(reply);
            var tcpLink = member is null && reply.TcpLink ? tcp?.LinkOf(worker.WorkerId) : null;
            // A TCP link that closes later (a call given up, a broken connection) is connected again by preparing the
            // worker again; its steps go as gRPC calls meanwhile.
            IWorkerClient stepClient = member?.Link is { } sameHost ? new LinkedWorkerClient(client, sameHost, log.Write)
                : tcpLink is not null ? new LinkedWorkerClient(client, tcpLink, log.Write, token => ReconnectAsync(client, worker, token))
                : client;
            connections.Add(new WorkerConnection(worker.WorkerId, worker.Generation, stepClient, member?.Slots, member?.Cpus, tcpLink is not null));
            handedOver = true;
            string declined = offer is null || member is not null ? "" : $" ({offer.Declined(reply)})";
            string transport = member is not null ? member.Description
                : tcpLink is not null ? $"weights and gradients over the TCP step link{declined}"
                : tcpOffer is not null ? $"weights and gradients over gRPC{declined}; {(reply.TcpLink ? "its TCP step link closed" : PeerText.Printable(reply.TcpLinkNote))}"
                : $"weights and gradients over gRPC{declined}";
            post(new WorkerPrepared(worker.WorkerId, worker.Generation, member is not null, $"data: {PeerText.Printable(reply.DataSource)}; {transport}"));
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

    /// <summary>
    /// Prepares <paramref name="worker"/> again with a fresh TCP link offer (it is prepared already, so it only connects
    /// the link) and returns its new link, or null when it did not connect one.
    /// </summary>
    private async Task<StepLink?> ReconnectAsync(IWorkerClient client, PrepareWorker worker, CancellationToken cancellationToken)
    {
        CancellationToken stopping;
        try { stopping = _stopping.Token; }
        catch (ObjectDisposedException) { return null; } // the run is over
        if (stopping.IsCancellationRequested) return null;
        using var both = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, stopping);
        var reply = await PrepareOnceAsync(client, worker, offer: null, tcp!.OfferFor(worker.WorkerId), both.Token).ConfigureAwait(false);
        return reply.TcpLink ? tcp.LinkOf(worker.WorkerId) : null;
    }

    private async Task<PrepareReply> PrepareOnceAsync(IWorkerClient client, PrepareWorker worker, IBulkOffer? offer,
        TcpLinkOffer? tcpOffer, CancellationToken cancellationToken)
    {
        var request = new PrepareRequest
        {
            ProtocolVersion = Protocol.Version, ModelSpecJson = _modelJson, DataSpecJson = _dataJson,
            DatasetFingerprint = fingerprint, MaxRequestBytes = _requestBytes, WorkerId = worker.WorkerId, TcpLink = tcpOffer,
        };
        offer?.AddTo(request);
        var reply = await client.PrepareAsync(request, DateTime.UtcNow + options.PrepareTimeout, cancellationToken);
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
