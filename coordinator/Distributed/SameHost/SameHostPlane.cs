// The same-host transport as this build's bulk plane (BulkPlane.cs): created when --shared-memory names a root. A root
// that cannot hold the files leaves the run without it (logged); a root that is not a directory is the user's error.
using DistTrain.Protos;

namespace DistTrain.Coordinator.Distributed;

public static partial class BulkPlanes
{
    static partial void CreateOptional(ClusterOptions options, int parameterCount, int slotCount, int batchSize, Action<string> log,
        ref IBulkPlane? plane)
    {
        if (options.SharedMemoryRoot is not { } root) return;
        try
        {
            plane = SharedMemoryHost.Create(root, parameterCount, slotCount, log, options.BindCpus, indexCapacity: Math.Max(1, batchSize));
        }
        catch (SharedMemoryException e)
        {
            log($"same-host transport off ({e.Message}); every worker gets weights and gradients in its messages");
        }
    }
}
