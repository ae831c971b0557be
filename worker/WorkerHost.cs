// Builds the worker's web host: configuration (appsettings.json < DISTTRAIN_ environment < flags), Kestrel on an
// HTTP/2 port (TLS optional), the token check, the Worker, grpc.health.v1 and /healthz services and the registration loop. The coordinator's in-process
// mode (--workers N) uses the same builder, so it runs exactly the code a remote worker runs.
using System.Net;
using DistTrain.Core;
using DistTrain.Protos;
using DistTrain.Protos.Security;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace DistTrain.Worker;

public static class WorkerHost
{
    /// <summary>Command-line flags and the configuration key each sets.</summary>
    public static readonly IReadOnlyDictionary<string, string> Flags = new Dictionary<string, string>
    {
        ["--coordinator"] = "Worker:Coordinator",
        ["--port"] = "Worker:Port",
        ["--host"] = "Worker:Host",
        ["--advertise"] = "Worker:Advertise",
        ["--data"] = "Worker:Data",
        ["--threads"] = "Worker:Threads",
        ["--cache-dir"] = "Worker:CacheDir",
        ["--max-message-bytes"] = "Worker:MaxMessageBytes",
        ["--register-timeout"] = "Worker:RegisterTimeoutSeconds",
        ["--shared-memory"] = "Worker:SharedMemory",
        ["--cpus"] = "Worker:Cpus",
    }.Concat(SecurityOptions.Flags.Keys.Select(flag => KeyValuePair.Create(flag, SecurityKey(flag)))).ToDictionary();

    /// <summary>Security flags land in their own section, away from the bound WorkerOptions.</summary>
    private static string SecurityKey(string flag) => "Security:" + flag.TrimStart('-');

    /// <summary><paramref name="security"/> is given by a coordinator hosting in-process workers; null reads flags and environment.</summary>
    public static WebApplication Build(string[] args, bool quiet = false, NodeSecurity? security = null)
    {
        for (int i = 0; i < args.Length; i++)
        {
            string name = args[i].Split('=')[0];
            if (!Flags.ContainsKey(name))
                throw new UserInputException($"unknown option '{args[i]}'; expected one of {string.Join(", ", Flags.Keys.Order())}");
            if (!args[i].Contains('=') && ++i >= args.Length) throw new UserInputException($"{name} needs a value");
        }
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = [], ContentRootPath = AppContext.BaseDirectory, ApplicationName = typeof(WorkerHost).Assembly.GetName().Name,
        });
        builder.Configuration.AddInMemoryCollection(
            WorkerEnvironment.Settings(Environment.GetEnvironmentVariables(), Console.Error.WriteLine));
        builder.Configuration.AddCommandLine(args, Flags.ToDictionary(f => f.Key, f => f.Value));
        var options = new WorkerOptions();
        try { builder.Configuration.GetSection(WorkerOptions.Section).Bind(options); }
        catch (InvalidOperationException e) { throw new UserInputException($"worker settings: {e.Message.Split('\n')[0]}"); }
        options.Validate();
        // Read the process's CPUs now, on the main thread, before any compute thread is bound.
        _ = Core.Training.CpuAffinity.ProcessCpus;
        security ??= NodeSecurity.Create(
            SecurityOptions.Read(flag => builder.Configuration[SecurityKey(flag)], Environment.GetEnvironmentVariable),
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
        });
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(security);
        builder.Services.AddSingleton<DatasetStore>();
        builder.Services.AddSingleton<WorkerSession>();
        builder.Services.AddHostedService<RegistrationService>();
        builder.Services.AddGrpc(grpc =>
        {
            grpc.MaxReceiveMessageSize = options.MaxMessageBytes;
            grpc.MaxSendMessageSize = options.MaxMessageBytes;
            grpc.EnableDetailedErrors = false;
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
