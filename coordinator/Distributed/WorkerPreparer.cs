// Brings registered workers to Ready: Prepare (model, data spec, fingerprint), streaming the dataset once when a
// worker lacks it, then Prepare again. A refusal is logged with the worker and its reason and the worker is left
// out; an unreachable worker is marked lost (it re-registers when it comes back).
using System.Text.Json;
using DistTrain.Core.Data;
using DistTrain.Core.Training;
using DistTrain.Protos;
using Grpc.Core;

namespace DistTrain.Coordinator.Distributed;

public sealed class WorkerPreparer(
    WorkerRegistry registry, ClusterOptions options, TrainingConfig config, int parameterCount, DataSplit data,
    string fingerprint, ClusterLog log, SharedMemoryHost? shared = null)
{
    private readonly Lazy<byte[]> _payload = new(() => DatasetCodec.Encode(data));
    private readonly string _modelJson = JsonSerializer.Serialize(config.Model, TrainingConfig.Json);
    private readonly string _dataJson = JsonSerializer.Serialize(config.Data, TrainingConfig.Json);
    private readonly long _requestBytes = MessageLimits.RequestBytes(parameterCount, config.Training.BatchSize);
    private readonly long _replyBytes = MessageLimits.ReplyBytes(parameterCount,
        new ShardPlan(Math.Max(1, config.Training.BatchSize), config.Training.ShardSize).ShardCount);
    private readonly List<IWorkerClient> _clients = [];

    /// <summary>Prepares workers as they register until cancelled.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var preparing = new List<Task>();
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var changed = registry.WaitForChangeAsync(cancellationToken);
                foreach (var entry in registry.TakeUnprepared()) preparing.Add(PrepareAsync(entry, cancellationToken));
                preparing.RemoveAll(t => t.IsCompleted);
                await changed;
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested) { }
        await Task.WhenAll(preparing);
        lock (_clients) foreach (var client in _clients) client.Dispose();
    }

    private async Task PrepareAsync(WorkerEntry entry, CancellationToken cancellationToken)
    {
        var client = new GrpcWorkerClient(entry.Address, _requestBytes, _replyBytes, options.Security);
        lock (_clients) _clients.Add(client);
        try
        {
            (SharedMemoryOffer Offer, Protos.SharedSlots Slots)? offer = null;
            try { offer = shared?.ForWorker(entry.Id, entry.Cores); }
            catch (IOException e) { log.Write($"worker {entry.Id}: no shared memory offered: {e.Message}"); }
            var reply = await PrepareOnceAsync(client, entry, offer?.Offer, cancellationToken);
            if (!reply.DataPresent)
            {
                log.Write($"worker {entry.Id} lacks the data; sending it ({_payload.Value.Length / 1048576.0:F1} MiB)");
                await client.SendDatasetAsync(fingerprint, _payload.Value, DateTime.UtcNow + options.DatasetTimeout, cancellationToken);
                reply = await PrepareOnceAsync(client, entry, offer?.Offer, cancellationToken);
                if (!reply.DataPresent)
                {
                    Refuse(entry, "it did not keep the dataset it was sent");
                    return;
                }
            }
            if (reply.ParameterCount != parameterCount)
            {
                Refuse(entry, $"it built a model with {reply.ParameterCount} parameters, expected {parameterCount}");
                return;
            }
            var slots = reply.SharedMemory && offer is { } accepted ? accepted.Slots : null;
            var link = slots is not null && reply.StepLink ? shared!.LinkOf(entry.Id) : null;
            // Where its compute threads run, when it bound them as offered (the step sends to it last when on this CPU).
            var cpus = slots is not null && reply.CpuBinding.StartsWith("bound", StringComparison.Ordinal) ? offer!.Value.Offer.ComputeCpus.ToList() : null;
            link?.WaitOnCpus(cpus ?? []);
            registry.MarkReady(entry.Id, link is null ? client : new SameHostWorkerClient(client, link), slots, cpus);
            string when = entry.ReadyDuringStep >= 0 ? $" during step {entry.ReadyDuringStep} (gets work from step {entry.ReadyDuringStep + 1})" : "";
            string transport = slots is not null
                ? $"weights and gradients through shared memory, steps over {(link is null ? "gRPC" : "the same-host link")}; compute threads {reply.CpuBinding}"
                : offer is null ? "weights and gradients over gRPC"
                : $"weights and gradients over gRPC (shared memory not used: {reply.SharedMemoryNote})";
            log.Write($"worker {entry.Id} ({entry.Address}, {entry.Cores} thread(s)) {(entry.Rejoins > 0 ? "rejoined and is " : "")}ready{when}; data: {reply.DataSource}; {transport}");
        }
        catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Cancelled)
        {
            if (cancellationToken.IsCancellationRequested) return;
            log.Write($"worker {entry.Id} ({entry.Address}) unreachable while preparing: {e.StatusCode}: {e.Status.Detail}");
            registry.MarkLost(entry.Id, $"unreachable while preparing: {e.Status.Detail}");
        }
        catch (RpcException e)
        {
            Refuse(entry, $"{e.StatusCode}: {e.Status.Detail}");
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested) { }
    }

    private async Task<PrepareReply> PrepareOnceAsync(IWorkerClient client, WorkerEntry entry, SharedMemoryOffer? offer,
        CancellationToken cancellationToken)
    {
        var reply = await client.PrepareAsync(new PrepareRequest
        {
            ProtocolVersion = Protocol.Version, ModelSpecJson = _modelJson, DataSpecJson = _dataJson,
            DatasetFingerprint = fingerprint, MaxRequestBytes = _requestBytes, WorkerId = entry.Id, SharedMemory = offer,
        }, DateTime.UtcNow + options.PrepareTimeout, cancellationToken);
        if (reply.ProtocolVersion != Protocol.Version)
            throw new RpcException(new Status(StatusCode.FailedPrecondition,
                $"the worker answered with protocol version {reply.ProtocolVersion}, expected {Protocol.Version}"));
        return reply;
    }

    private void Refuse(WorkerEntry entry, string reason)
    {
        log.Write($"worker {entry.Id} ({entry.Address}) refused: {reason}");
        registry.MarkRefused(entry.Id, reason);
    }
}
