// The URL a worker registers with the coordinator: the scheme and port Kestrel really bound, and a host the
// coordinator can reach. A wildcard bind (containers, several hosts) advertises the local address on the route to
// the coordinator, so `docker compose --scale` replicas and hosts need no per-worker setting.
using System.Net;
using System.Net.Sockets;

namespace DistTrain.Worker;

public static class AdvertisedAddress
{
    public static bool IsWildcard(string host) => host is "0.0.0.0" or "::" or "[::]" or "*" or "+" or "";

    /// <summary><paramref name="bound"/> is a URL Kestrel reports, e.g. http://0.0.0.0:5101.</summary>
    public static string Resolve(WorkerOptions options, string bound)
    {
        var uri = new Uri(bound.Replace("[::]", "localhost").Replace("0.0.0.0", "localhost"));
        string host = options.Advertise is { Length: > 0 } advertise ? advertise
            : IsWildcard(options.Host) ? RouteTo(new Uri(options.Coordinator))
            : options.Host;
        return $"{uri.Scheme}://{host}:{uri.Port}";
    }

    /// <summary>
    /// The source address the OS picks for traffic to the coordinator: connecting a UDP socket only consults the
    /// routing table, it sends nothing.
    /// </summary>
    private static string RouteTo(Uri coordinator)
    {
        try { return RouteOrThrow(coordinator); }
        // Not resolvable yet: the host name is the next best guess (Docker's DNS resolves a container's host name).
        catch (SocketException) { return Dns.GetHostName(); }
    }

    private static string RouteOrThrow(Uri coordinator)
    {
        var target = IPAddress.TryParse(coordinator.DnsSafeHost, out var ip) ? ip
            : Dns.GetHostAddresses(coordinator.DnsSafeHost).OrderBy(a => a.AddressFamily != AddressFamily.InterNetwork).First();
        using var probe = new Socket(target.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        probe.Connect(target, coordinator.Port);
        var local = ((IPEndPoint)probe.LocalEndPoint!).Address;
        return local.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{local}]" : local.ToString();
    }
}
