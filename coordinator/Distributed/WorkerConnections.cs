// The data plane's handles to prepared workers: per worker id, the connection of its current life (generation), its
// gradient slots and CPUs when it joined the bulk plane (BulkPlane.cs). The preparer adds one; the machine's Disconnect removes
// it; the transport looks one up per request. A connection of an older life never replaces a newer one.
using DistTrain.Protos;

namespace DistTrain.Coordinator.Distributed;

/// <param name="TcpLink">Its steps travel over a TCP step link: the weights always go in the request (a fetch would be a gRPC call).</param>
public sealed record WorkerConnection(string WorkerId, long Generation, IWorkerClient Client, IGradientSlots? Slots = null,
    IReadOnlyList<int>? Cpus = null, bool TcpLink = false);

public sealed class WorkerConnections : IDisposable
{
    private readonly Dictionary<string, WorkerConnection> _byId = [];
    private bool _disposed;

    public bool TryGet(string workerId, long generation, out WorkerConnection connection)
    {
        lock (_byId)
        {
            if (_byId.TryGetValue(workerId, out var found) && found.Generation == generation)
            {
                connection = found;
                return true;
            }
        }
        connection = null!;
        return false;
    }

    /// <summary>The CPUs the worker's compute threads run on (null: not bound, or not connected).</summary>
    public IReadOnlyList<int>? CpusOf(string workerId, long generation) =>
        TryGet(workerId, generation, out var connection) ? connection.Cpus : null;

    public void Add(WorkerConnection connection)
    {
        WorkerConnection? replaced = null;
        bool kept;
        lock (_byId)
        {
            kept = !_disposed && !(_byId.TryGetValue(connection.WorkerId, out var current) && current.Generation > connection.Generation);
            if (kept)
            {
                _byId.Remove(connection.WorkerId, out replaced);
                _byId[connection.WorkerId] = connection;
            }
        }
        replaced?.Client.Dispose();
        if (!kept) connection.Client.Dispose();
    }

    /// <summary>Removes the connection of that life; false when it is not the current one (nothing removed).</summary>
    public bool Remove(string workerId, long generation)
    {
        WorkerConnection? removed = null;
        lock (_byId)
        {
            if (_byId.TryGetValue(workerId, out var current) && current.Generation == generation) _byId.Remove(workerId, out removed);
        }
        removed?.Client.Dispose();
        return removed is not null;
    }

    public void Dispose()
    {
        List<WorkerConnection> all;
        lock (_byId)
        {
            _disposed = true;
            all = [.. _byId.Values];
            _byId.Clear();
        }
        foreach (var connection in all) connection.Client.Dispose();
    }
}
