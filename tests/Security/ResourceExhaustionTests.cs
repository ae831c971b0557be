// What unauthenticated peers can make a coordinator hold: 10,000 grpc.health.v1 Watch calls (the one streaming call
// that needs no token) get at most 16 open streams, 300 sockets that never finish their request headers lock the
// dashboard out for a few seconds at most, the coordinator's memory stays within a stated bound, and the run that
// was waiting for its worker meanwhile still trains normally.
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using DistTrain.Protos.Security;
using DistTrain.Tests.Distributed;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;

namespace DistTrain.Tests.Security;

public sealed partial class ResourceExhaustionTests
{
    /// <summary>
    /// The stated bounds: 10,000 watch calls may grow resident memory by this much (measured: +135 MiB, most of it the
    /// collector's first-generation budget and Kestrel's buffer pool growing to 10,000 concurrent streams), 300 slow
    /// sockets by <see cref="SocketGrowth"/>.
    /// </summary>
    private const long AllowedGrowth = 192L << 20, SocketGrowth = 32L << 20;

    [Fact]
    public async Task HealthWatchFloodAndSlowDashboardSocketsLeaveMemoryBoundedAndTheRunTrains()
    {
        using var cluster = new SecureCluster();
        int port = ProcessHarness.FreePort(), dashboardPort = ProcessHarness.FreePort();
        string url = $"http://127.0.0.1:{port}", save = cluster.File("w.safetensors");
        var coordinator = cluster.Coordinator(url, cluster.WriteConfig(), save, extra: ["--dashboard-port", dashboardPort.ToString()]);
        ProcessHarness.WaitForPort(port);
        ProcessHarness.WaitForPort(dashboardPort);
        int pid = coordinator.Process.Id;
        long before = Rss(pid);

        // 100 connections × 100 Watch calls, all opened before any is read: 16 stay open, the rest are refused.
        long afterFlood = await WatchFloodAsync(url, pid);
        Assert.True(afterFlood <= before + AllowedGrowth,
            $"resident memory {before >> 20} MiB before, {afterFlood >> 20} MiB after 10,000 watch calls (allowed +{AllowedGrowth >> 20} MiB)");

        // 300 sockets that send half a request and wait.
        var slow = new List<TcpClient>();
        try
        {
            for (int i = 0; i < 300; i++)
            {
                var socket = new TcpClient();
                await socket.ConnectAsync("127.0.0.1", dashboardPort);
                await socket.GetStream().WriteAsync(Encoding.ASCII.GetBytes("GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
                slow.Add(socket);
            }
            // The dashboard answers again once the slow sockets' header time (3 s) has run out.
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
            bool answered = false;
            while (!answered && DateTime.UtcNow < deadline)
            {
                try { answered = (await http.GetAsync($"http://127.0.0.1:{dashboardPort}/healthz")).IsSuccessStatusCode; }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { await Task.Delay(250); }
            }
            Assert.True(answered, "the dashboard did not answer within 15 s of 300 slow sockets");
        }
        finally
        {
            foreach (var socket in slow) socket.Dispose();
        }
        long after = Rss(pid);
        Assert.True(after <= afterFlood + SocketGrowth,
            $"resident memory {afterFlood >> 20} MiB before 300 slow dashboard sockets, {after >> 20} MiB after (allowed +{SocketGrowth >> 20} MiB)");

        // The run was waiting for its worker all along; it still trains normally.
        cluster.Worker("worker", url);
        var (code, output) = ProcessHarness.Wait(coordinator, SecureCluster.RunTimeout);
        Assert.True(code == 0, output);
        Assert.True(File.Exists(save));
    }

    /// <summary>10,000 Watch calls at once over 100 connections; returns the coordinator's resident memory after them.</summary>
    private static async Task<long> WatchFloodAsync(string url, int pid)
    {
        var channels = Enumerable.Range(0, 100).Select(_ => GrpcChannel.ForAddress(url, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = false },
        })).ToList();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        var calls = channels.SelectMany(c => Enumerable.Range(0, 100).Select(_ =>
            new Health.HealthClient(c).Watch(new HealthCheckRequest(), cancellationToken: stop.Token))).ToList();
        int watching = 0, exhausted = 0;
        foreach (var call in calls)
        {
            try
            {
                if (await call.ResponseStream.MoveNext(stop.Token)) watching++;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.ResourceExhausted)
            {
                exhausted++;
            }
        }
        long rss = Rss(pid);
        Assert.Equal(ServerLimits.MaxHealthWatches, watching);
        Assert.Equal(10_000 - ServerLimits.MaxHealthWatches, exhausted);
        foreach (var call in calls) call.Dispose();
        foreach (var channel in channels) channel.Dispose();
        return rss;
    }

    private static long Rss(int pid) =>
        long.Parse(RssLine().Match(File.ReadAllText($"/proc/{pid}/status")).Groups[1].Value) * 1024;

    [GeneratedRegex(@"^VmRSS:\s+(\d+) kB", RegexOptions.Multiline)]
    private static partial Regex RssLine();
}
