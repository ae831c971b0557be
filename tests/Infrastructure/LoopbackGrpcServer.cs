// A gRPC service instance of the test's own, served over plaintext HTTP/2 on 127.0.0.1 at a free port: the stand-in
// coordinators that tests point workers at.
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace DistTrain.Tests.Infrastructure;

public static class LoopbackGrpcServer
{
    /// <summary>
    /// Serves <paramref name="service"/> (resolved as itself for every call); <paramref name="configure"/> may add
    /// middleware before the service is mapped. Returns the started app and its URL.
    /// </summary>
    public static async Task<(WebApplication App, string Url)> StartAsync<TService>(TService service,
        Action<WebApplication>? configure = null) where TService : class
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc();
        builder.Services.AddSingleton(service);
        var app = builder.Build();
        configure?.Invoke(app);
        app.MapGrpcService<TService>();
        await app.StartAsync();
        return (app, $"http://127.0.0.1:{new Uri(app.Urls.First()).Port}");
    }
}
