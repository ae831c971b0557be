// Builds the worker's web host: configuration (appsettings.json < DISTTRAIN_ environment < flags), Kestrel on an
// HTTP/2 port (TLS optional), the token check, the Worker, grpc.health.v1 and /healthz services and the registration loop. The coordinator's in-process
// mode (--workers N) uses the same builder, so it runs exactly the code a remote worker runs.
using System.Net;
using DistTrain.Core;
using DistTrain.Protos;
using DistTrain.Protos.Cli;
using DistTrain.Protos.Security;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace DistTrain.Worker;

public static class WorkerHost
{
    /// <summary>
    /// Builds from a command line (in-process workers of the coordinator); help or --version there is a mistake.
    /// <paramref name="security"/> is given by a coordinator hosting in-process workers; null reads the options.
    /// <paramref name="embedded"/>: the host runs inside another program, which owns SIGINT and SIGTERM.
    /// </summary>
    public static WebApplication Build(string[] args, bool quiet = false, NodeSecurity? security = null, bool embedded = false)
    {
        var line = WorkerCli.Parse(args, CommandOptions.ProcessEnvironment());
        if (line.IsParserAction) throw new UserInputException($"{WorkerCli.Program}: expected worker options, found '{string.Join(' ', args)}'");
        return Build(line.Options!, quiet, security, embedded);
    }

    public static WebApplication Build(CommandOptions flags, bool quiet = false, NodeSecurity? security = null, bool embedded = false)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = [], ContentRootPath = AppContext.BaseDirectory, ApplicationName = typeof(WorkerHost).Assembly.GetName().Name,
        });
        WorkerEnvironment.WarnAboutUnknown(Environment.GetEnvironmentVariables(), Console.Error.WriteLine);
        // Variables, then flags: the table maps both onto the same keys, so a flag wins over its variable.
        builder.Configuration.AddEnvironmentVariables(CliOption.Prefix);
        builder.Configuration.AddInMemoryCollection(WorkerCli.Options.Where(o => o.Name is not null && flags.FromCommandLine(o.Name))
            .Select(o => KeyValuePair.Create(o.Key, flags.Get(o.Name!))));
        // A switch set by flag or variable reads as the table reads it ("1", "yes" and "on" are true too), so the
        // binder never meets a value it cannot convert.
        builder.Configuration.AddInMemoryCollection(WorkerCli.Options.Where(o => o is { IsSwitch: true, Name: not null } && flags.Get(o.Name) is not null)
            .Select(o => KeyValuePair.Create(o.Key, (string?)(flags.Has(o.Name!) ? "true" : "false"))));
        var options = new WorkerOptions();
        try { builder.Configuration.GetSection(WorkerOptions.Section).Bind(options); }
        catch (InvalidOperationException e) { throw new UserInputException($"worker settings: {e.Message.Split('\n')[0]}"); }
        options.Validate();
        // Read the process's CPUs now, on the main thread, before any compute thread is bound.
        _ = Core.Training.CpuAffinity.ProcessCpus;
        security ??= NodeSecurity.Create(
            SecurityOptions.Read(flags.Get, flags.Environment),
            options.Host, "worker", Console.Error.WriteLine);
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(console => { console.SingleLine = true; console.TimestampFormat = "HH:mm:ss "; });
        if (quiet)
            builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["Logging:LogLevel:Default"] = "Warning" });

        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            void Http2(ListenOptions listen)
            {
                listen.Protocols = HttpProtocols.Http2;
                security.ConfigureEndpoint(listen);
            }
            if (IPAddress.TryParse(options.Host, out var ip)) kestrel.Listen(ip, options.Port, Http2);
            else if (options.Host == "localhost") kestrel.ListenLocalhost(options.Port, Http2);
            else kestrel.ListenAnyIP(options.Port, Http2);
            // A worker talks to one coordinator; the rest are health probes.
            ServerLimits.Apply(kestrel, maxConnections: 64, maxStreamsPerConnection: 100);
        });
        builder.Services.AddSingleton<HealthWatchLimit>();
        // A worker process stops on SIGINT/SIGTERM with exit code 0 (ASP.NET's console lifetime); inside the coordinator
        // the signals are the coordinator's.
        if (embedded) builder.Services.AddSingleton<IHostLifetime, EmbeddedHostLifetime>();
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(security);
        builder.Services.AddSingleton<DatasetStore>();
        builder.Services.AddSingleton<CoordinatorWeights>();
        builder.Services.AddSingleton<WorkerSession>();
        builder.Services.AddSingleton<RunMembership>();
        builder.Services.AddSingleton<CoordinatorCredential>();
        builder.Services.AddHostedService<RegistrationService>();
        builder.Services.AddGrpc(grpc =>
        {
            grpc.MaxReceiveMessageSize = options.MaxMessageBytes;
            grpc.MaxSendMessageSize = options.MaxMessageBytes;
            grpc.EnableDetailedErrors = false;
            grpc.Interceptors.Add<HealthWatchLimit>();
        });
        builder.Services.AddGrpcHealthChecks().AddCheck("worker", () =>
            Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult.Healthy());

        var app = builder.Build();
        var securityLog = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("DistTrain.Security");
        security.Protect(app, message => securityLog.LogWarning("{Refusal}", message));
        app.MapGrpcService<WorkerService>();
        app.MapGrpcHealthChecksService();
        return app;
    }
}
