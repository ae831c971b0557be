// What the dashboard knows about the machines computing gradients: the control plane's published view (its workers
// table, the run's state and phase). Distributed mode reads the cluster driver's view; local mode shows its one
// in-process "local" worker in the same shape.
using DistTrain.Coordinator.Control;

namespace DistTrain.Coordinator.Dashboard;

public interface IWorkerStatusSource
{
    /// <summary>The latest view; called from the dashboard's own tasks, never from the training thread.</summary>
    ClusterView Snapshot();
}

/// <summary>Distributed mode's source: the view the cluster's driver publishes.</summary>
public sealed class ClusterStatusSource(ClusterDriver driver) : IWorkerStatusSource
{
    public ClusterView Snapshot() => driver.View;
}
