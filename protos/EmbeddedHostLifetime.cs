// The lifetime of a web host that lives inside another program (the coordinator's gRPC server, its in-process workers,
// the dashboard): it takes no signals. ASP.NET's default console lifetime would catch SIGINT and SIGTERM for itself
// and stop only its own host, leaving the program running; the program that embeds the host owns the signals.
using Microsoft.Extensions.Hosting;

namespace DistTrain.Protos;

public sealed class EmbeddedHostLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
