// A throw-away multi-host network of Linux network namespaces on a bridge: each "host" gets its own namespace and
// address, as compose gives each container. Nothing gets an address in the test's own namespace, so traffic stays
// between the namespaces made here. Names carry the creating pid: leftovers of a dead run are removed at start,
// a concurrent run's are left alone; everything made is removed at dispose, also after a failure.
using System.Text.RegularExpressions;

namespace DistTrain.Tests.Deployment;

public sealed partial class NetworkNamespaces : IDisposable
{
    private const string NamespacePrefix = "dtsec-", LinkPrefix = "dts";
    private readonly int _pid = Environment.ProcessId;
    private readonly List<string> _namespaces = [];
    private readonly string _bridge;

    public NetworkNamespaces()
    {
        RemoveLeftovers();
        _bridge = $"{LinkPrefix}{_pid}b";
        Ip("link", "add", _bridge, "type", "bridge");
        Ip("link", "set", _bridge, "up");
    }

    /// <summary>10.214.N.0/24, N from the pid; the bridges are separate, so even equal subnets could not collide.</summary>
    public string Subnet => $"10.214.{20 + _pid % 200}";

    /// <summary>Why namespaces cannot be made here, or null when they can.</summary>
    public static string? Unavailable()
    {
        if (!OperatingSystem.IsLinux()) return "network namespaces are Linux-only";
        string status = File.ReadAllText("/proc/self/status");
        if (!UidLine().Match(status).Groups[1].Value.Equals("0", StringComparison.Ordinal))
            return "needs root to create network namespaces and a bridge (run the tests as root, as CI does)";
        if (!Tool.Succeeds("ip", "netns", "list")) return "the `ip` tool (iproute2) is missing or cannot list namespaces";
        return null;
    }

    /// <summary>Makes namespace <paramref name="name"/> with address Subnet.<paramref name="host"/> on the bridge.</summary>
    public (string Namespace, string Address) AddHost(string name, int host)
    {
        string ns = $"{NamespacePrefix}{_pid}-{name}", outside = $"{LinkPrefix}{_pid}v{_namespaces.Count}",
            inside = $"{LinkPrefix}{_pid}i{_namespaces.Count}", address = $"{Subnet}.{host}";
        Ip("netns", "add", ns);
        _namespaces.Add(ns);
        Ip("link", "add", outside, "type", "veth", "peer", "name", inside);
        Ip("link", "set", inside, "netns", ns);
        Ip("link", "set", outside, "master", _bridge, "up");
        Ip("-n", ns, "addr", "add", $"{address}/24", "dev", inside);
        Ip("-n", ns, "link", "set", inside, "up");
        Ip("-n", ns, "link", "set", "lo", "up");
        return (ns, address);
    }

    /// <summary>The arguments of `ip` that run a program inside <paramref name="ns"/>.</summary>
    public static string[] Exec(string ns, params string[] command) => ["netns", "exec", ns, .. command];

    public void Dispose()
    {
        // Deleting a namespace deletes its end of the veth pair, and with it the end on the bridge.
        foreach (var ns in _namespaces) TryIp("netns", "del", ns);
        TryIp("link", "del", _bridge);
    }

    private static void RemoveLeftovers()
    {
        foreach (var line in Tool.Run("ip", ["netns", "list"]).Output.Split('\n'))
        {
            var match = LeftoverNamespace().Match(line);
            if (match.Success && IsDead(match.Groups["pid"].Value)) TryIp("netns", "del", match.Groups["name"].Value);
        }
        foreach (var line in Tool.Run("ip", ["-o", "link", "show"]).Output.Split('\n'))
        {
            var match = LeftoverLink().Match(line);
            if (match.Success && IsDead(match.Groups["pid"].Value)) TryIp("link", "del", match.Groups["name"].Value);
        }
    }

    private static bool IsDead(string pid) => !Directory.Exists($"/proc/{pid}");

    private static void Ip(params string[] args)
    {
        var (code, output) = Tool.Run("ip", args);
        if (code != 0) throw new InvalidOperationException($"ip {string.Join(' ', args)} failed ({code}): {output}");
    }

    private static void TryIp(params string[] args) => Tool.Run("ip", args);

    [GeneratedRegex(@"^Uid:\s+(\d+)", RegexOptions.Multiline)]
    private static partial Regex UidLine();

    [GeneratedRegex(@"^(?<name>dtsec-(?<pid>\d+)-\S+)")]
    private static partial Regex LeftoverNamespace();

    [GeneratedRegex(@"^\d+:\s+(?<name>dts(?<pid>\d+)[bvi]\d*)[@:]")]
    private static partial Regex LeftoverLink();
}
