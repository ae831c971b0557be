// `/healthz` on each node's gRPC port, and `healthcheck URL`, the probe container health checks run: the runtime
// image has neither curl nor grpc_health_probe, but it has dotnet and these programs. The path needs no token.
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace DistTrain.Protos;

public static class HealthEndpoint
{
    public const string Path = "/healthz";
    public const string Command = "healthcheck";

    public static void Map(IEndpointRouteBuilder app) => app.MapGet(Path, () => Results.Text("ok\n"));

    /// <summary>`healthcheck URL`: exit 0 when URL answers 200 within 5 s, 1 otherwise, 2 for a bad argument.</summary>
    public static async Task<int> ProbeAsync(string[] args)
    {
        if (args.Length != 1 || !Uri.TryCreate(args[0], UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
        {
            Console.Error.WriteLine($"usage: {Command} http(s)://HOST:PORT{Path}");
            return 2;
        }
        var handler = new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(3) };
        // The probe runs inside the node's own container against loopback: whose certificate it is does not matter.
        if (Security.NodeSecurity.IsLoopback(url.Host))
            handler.SslOptions.RemoteCertificateValidationCallback = Security.NodeSecurity.AcceptAnyCertificate;
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(5) };
        try
        {
            // The nodes' ports speak HTTP/2 only; over plain http that is prior knowledge (h2c).
            using var request = new HttpRequestMessage(HttpMethod.Get, url)
            {
                Version = HttpVersion.Version20,
                VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            };
            using var response = await http.SendAsync(request);
            Console.WriteLine($"{url}: {(int)response.StatusCode}");
            return response.StatusCode == HttpStatusCode.OK ? 0 : 1;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            Console.Error.WriteLine($"{url}: {e.Message}");
            return 1;
        }
    }
}
