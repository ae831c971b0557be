// The session secret each worker gave in its Register, by the callback address it registered (the address is what
// the registry keys workers by, and the process listening there is the one whose secret was last registered). Every
// call the data plane makes to a worker (Prepare, the dataset, steps, EndRun) sends the secret of its address.
using DistTrain.Protos.Security;

namespace DistTrain.Coordinator.Distributed;

public sealed class WorkerSessions
{
    private readonly Dictionary<string, SessionSecret> _byAddress = [];

    /// <summary>Keeps <paramref name="secret"/> for <paramref name="address"/>; a later registration replaces it.</summary>
    public void Remember(string address, SessionSecret secret)
    {
        lock (_byAddress) _byAddress[address] = secret;
    }

    /// <summary>Puts back what <see cref="Of"/> returned before a registration the control plane refused.</summary>
    public void Restore(string address, SessionSecret? previous)
    {
        lock (_byAddress)
        {
            if (previous is null) _byAddress.Remove(address);
            else _byAddress[address] = previous;
        }
    }

    /// <summary>The secret registered from <paramref name="address"/>, or null for an address that never registered.</summary>
    public SessionSecret? Of(string address)
    {
        lock (_byAddress) return _byAddress.GetValueOrDefault(address);
    }

    /// <summary>The node's handler for channels to <paramref name="address"/>, adding that worker's secret when known.</summary>
    public HttpMessageHandler HandlerFor(string address, NodeSecurity security, SocketsHttpHandler? sockets = null)
    {
        var handler = security.CreateClientHandler(sockets);
        return Of(address) is { } secret ? secret.Attach(handler) : handler;
    }
}
