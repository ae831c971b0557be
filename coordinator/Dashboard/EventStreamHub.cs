// Fans Server-Sent-Events payloads out to at most N clients. Each client has a tiny mailbox that keeps only the
// newest payloads, so a slow browser loses intermediate updates instead of growing memory or holding anyone up.
using System.Threading.Channels;

namespace DistTrain.Coordinator.Dashboard;

public sealed class EventStreamHub(int maxClients)
{
    private readonly Lock _gate = new();
    private readonly List<Channel<string>> _clients = [];

    public int MaxClients { get; } = maxClients;

    public int ClientCount
    {
        get { lock (_gate) return _clients.Count; }
    }

    /// <summary>A mailbox for one client, or null when the hub is full (the caller answers 503).</summary>
    public Subscription? TryJoin()
    {
        var channel = Channel.CreateBounded<string>(new BoundedChannelOptions(4)
        {
            FullMode = BoundedChannelFullMode.DropOldest,
            SingleReader = true,
            SingleWriter = true,
        });
        lock (_gate)
        {
            if (_clients.Count >= MaxClients) return null;
            _clients.Add(channel);
        }
        return new Subscription(this, channel);
    }

    public void Broadcast(string payload)
    {
        lock (_gate)
            foreach (var client in _clients) client.Writer.TryWrite(payload);
    }

    /// <summary>Ends every stream (shutdown): the handlers' reads complete and their requests finish.</summary>
    public void CloseAll()
    {
        lock (_gate)
            foreach (var client in _clients) client.Writer.TryComplete();
    }

    private void Leave(Channel<string> channel)
    {
        lock (_gate) _clients.Remove(channel);
    }

    public sealed class Subscription(EventStreamHub hub, Channel<string> channel) : IDisposable
    {
        public ChannelReader<string> Reader => channel.Reader;
        public void Dispose() => hub.Leave(channel);
    }
}
