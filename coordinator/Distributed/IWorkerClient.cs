// The coordinator's view of one worker's RPCs; GrpcWorkerClient is the real one, tests substitute fakes that
// return malformed or non-finite gradients, fail or stall.
using DistTrain.Protos;

namespace DistTrain.Coordinator.Distributed;

public interface IWorkerClient : IDisposable
{
    Task<PrepareReply> PrepareAsync(PrepareRequest request, DateTime deadline, CancellationToken cancellationToken);
    Task<ReceiveDatasetReply> SendDatasetAsync(string fingerprint, ReadOnlyMemory<byte> payload, DateTime deadline,
        CancellationToken cancellationToken);
    Task<ComputeReply> ComputeAsync(ComputeRequest request, DateTime deadline, CancellationToken cancellationToken);
}
