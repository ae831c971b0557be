// What the driver asks of the world beyond the log: the step transport (the data plane) sends requests and keeps
// results, the preparer brings workers to Ready. Both do their I/O elsewhere and report back by posting events; none of
// these methods may block or call into the machine.
namespace DistTrain.Coordinator.Control;

public interface IStepTransport
{
    void BeginAttempt(BeginAttempt command);
    /// <summary>The consecutive sends of one command list, in the machine's order (the transport may reorder them).</summary>
    void Send(IReadOnlyList<SendRequest> requests);
    void Cancel(CancelRequest command);
    void Keep(KeepBlocks command);
    /// <returns>What to run once the driver has let go of the machine (the trainer's continuation), or null.</returns>
    Action? Complete(CompleteStep command);
    /// <returns>As for Complete.</returns>
    Action? Fail(FailStep command);
}

public interface IWorkerPreparation
{
    void Prepare(PrepareWorker command);
    void Disconnect(DisconnectWorker command);
}
