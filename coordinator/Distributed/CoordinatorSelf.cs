// The addresses that name this coordinator itself: the URL workers reach it at and its bound port on loopback, on the
// wildcard or on one of this machine's own interfaces. A worker registered there would be the coordinator preparing
// itself, refused, and counted as an expected worker that answered; so the service refuses it up front.
using System.Net;
using System.Net.NetworkInformation;

namespace DistTrain.Coordinator.Distributed;

public sealed class CoordinatorSelf
{
    private volatile Uri? _address;
    private volatile HashSet<IPAddress> _ownAddresses = [];

    /// <summary>Known once the server is bound (before it, no address names it).</summary>
    public void Bound(string address)
    {
        var own = new HashSet<IPAddress> { IPAddress.Any, IPAddress.IPv6Any };
        try
        {
            foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
                foreach (var unicast in nic.GetIPProperties().UnicastAddresses) own.Add(unicast.Address);
        }
        catch (NetworkInformationException) { }
        _ownAddresses = own;
        _address = new Uri(address);
    }

    /// <summary>Whether <paramref name="uri"/> (a worker's claimed address) is this coordinator.</summary>
    public bool Names(Uri uri)
    {
        if (_address is not { } self || uri.Port != self.Port) return false;
        string host = uri.IdnHost.Trim('[', ']');
        if (string.Equals(host, self.IdnHost.Trim('[', ']'), StringComparison.OrdinalIgnoreCase) ||
            string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase) ||
            string.Equals(host, Dns.GetHostName(), StringComparison.OrdinalIgnoreCase)) return true;
        return IPAddress.TryParse(host, out var ip) && (IPAddress.IsLoopback(ip) || _ownAddresses.Contains(ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : ip));
    }
}
