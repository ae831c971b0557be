// Structured logs through ILogger on stderr (stdout keeps the epoch rows): one line per event, or JSON objects with
// --log-json for log collectors. ASP.NET Core's own chatter is kept to warnings.
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace DistTrain.Coordinator.Dashboard;

public static class DashboardLogging
{
    public static ILoggerFactory Create(bool json) => LoggerFactory.Create(builder =>
    {
        builder.SetMinimumLevel(LogLevel.Information);
        builder.AddFilter("Microsoft", LogLevel.Warning);
        // A dashboard port in use is reported by the dashboard itself in one line; the host would add a stack trace.
        builder.AddFilter("Microsoft.Extensions.Hosting", LogLevel.None);
        builder.AddFilter("Microsoft.AspNetCore.Hosting", LogLevel.None);
        builder.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        if (json)
            builder.AddJsonConsole(o =>
            {
                o.UseUtcTimestamp = true;
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
            });
        else
            builder.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss ";
            });
    });
}
