// Per-worker network namespaces for link faults (root only): a bridge in the test's own private /24 (10.213.77.0/24)
// carries the coordinator's address, each worker namespace hangs off it by a veth pair, so one worker's link can
// be cut (link down) or delayed (netem). Everything is named with one prefix, leftovers are removed first, all of it
// is deleted at Dispose. Only addresses of namespaces made here are ever used.
using System.Diagnostics;

namespace DistTrain.Tests.Fault;

public sealed class NetworkNamespaces : IDisposable
{
    private const string Prefix = "dtflt";
    private const string Subnet = "10.213.77";
    private const string Bridge = Prefix + "br";
    private readonly int _count;

    private NetworkNamespaces(int count) => _count = count;

    public string CoordinatorAddress => $"{Subnet}.1";
    public string WorkerAddress(int slot) => $"{Subnet}.{10 + slot}";
    public string Namespace(int slot) => $"{Prefix}-ns{slot}";
    /// <summary>The root-side end of the worker's veth pair: cutting or delaying it affects only that worker.</summary>
    private string Link(int slot) => $"{Prefix}v{slot}";

    /// <summary>Null when the test cannot make namespaces here (not root, no ip); <paramref name="why"/> says why.</summary>
    public static NetworkNamespaces? TryCreate(int workers, out string why)
    {
        why = "";
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root") { why = "not running as root on Linux"; return null; }
        if (Run("ip", "-V").Code != 0) { why = "the ip command (iproute2) is missing"; return null; }
        RemoveLeftovers();
        var made = new NetworkNamespaces(workers);
        try
        {
            Must("ip", $"link add {Bridge} type bridge");
            Must("ip", $"addr add {made.CoordinatorAddress}/24 dev {Bridge}");
            Must("ip", $"link set {Bridge} up");
            for (int slot = 0; slot < workers; slot++)
            {
                string ns = made.Namespace(slot), peer = $"{Prefix}p{slot}";
                Must("ip", $"netns add {ns}");
                Must("ip", $"link add {made.Link(slot)} type veth peer name {peer}");
                Must("ip", $"link set {peer} netns {ns}");
                Must("ip", $"link set {made.Link(slot)} master {Bridge}");
                Must("ip", $"link set {made.Link(slot)} up");
                Must("ip", $"netns exec {ns} ip addr add {made.WorkerAddress(slot)}/24 dev {peer}");
                Must("ip", $"netns exec {ns} ip link set {peer} up");
                Must("ip", $"netns exec {ns} ip link set lo up");
            }
            return made;
        }
        catch (InvalidOperationException e)
        {
            made.Dispose();
            why = e.Message;
            return null;
        }
    }

    /// <summary>Whether netem delays work here (tc present, sch_netem loadable); otherwise the reason.</summary>
    public string? NetemUnavailable()
    {
        var probe = Run("tc", $"qdisc add dev {Link(0)} root netem delay 1ms");
        if (probe.Code != 0) return $"netem delays skipped: tc qdisc netem failed ({probe.Output.Trim()}; needs tc from iproute2 and the sch_netem kernel module)";
        Run("tc", $"qdisc del dev {Link(0)} root");
        return null;
    }

    public void Cut(int slot) => Must("ip", $"link set {Link(slot)} down");
    public void Restore(int slot) => Must("ip", $"link set {Link(slot)} up");
    public void Delay(int slot, int milliseconds) => Must("tc", $"qdisc add dev {Link(slot)} root netem delay {milliseconds}ms");
    public void Undelay(int slot) => Must("tc", $"qdisc del dev {Link(slot)} root");

    public void Dispose()
    {
        for (int slot = 0; slot < _count; slot++)
        {
            Run("ip", $"netns del {Namespace(slot)}"); // takes the namespace's veth end, and with it the pair
            Run("ip", $"link del {Link(slot)}");
        }
        Run("ip", $"link del {Bridge}");
    }

    /// <summary>Namespaces and links with this test's prefix left by a run that died before its Dispose.</summary>
    private static void RemoveLeftovers()
    {
        foreach (var line in Run("ip", "netns list").Output.Split('\n'))
            if (line.Split(' ')[0] is { } name && name.StartsWith(Prefix + "-", StringComparison.Ordinal)) Run("ip", $"netns del {name}");
        foreach (var line in Run("ip", "-o link show").Output.Split('\n'))
        {
            var parts = line.Split(':', 3);
            if (parts.Length < 2) continue;
            string name = parts[1].Trim().Split('@')[0];
            if (name.StartsWith(Prefix, StringComparison.Ordinal)) Run("ip", $"link del {name}");
        }
    }

    private static void Must(string program, string args)
    {
        var (code, output) = Run(program, args);
        if (code != 0) throw new InvalidOperationException($"{program} {args} failed ({code}): {output.Trim()}");
    }

    private static (int Code, string Output) Run(string program, string args)
    {
        var info = new ProcessStartInfo(program, args) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        try
        {
            using var process = Process.Start(info)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(10_000))
            {
                process.Kill();
                return (-1, $"{program} {args} timed out");
            }
            return (process.ExitCode, stdout.Result + stderr.Result);
        }
        catch (System.ComponentModel.Win32Exception e) { return (-1, e.Message); }
    }
}
