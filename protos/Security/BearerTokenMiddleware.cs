// Refuses every call that lacks the deployment's bearer token before its body is read (so a stranger cannot make a
// node parse or buffer anything), answering gRPC's Unauthenticated status. Refusals are logged with the peer's
// address and the reason, never with what the peer sent; a burst of them is summarised rather than flooding the log.
using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace DistTrain.Protos.Security;

public static class BearerTokenMiddleware
{
    /// <summary>Paths anyone may call: liveness only, they reveal nothing but "serving".</summary>
    public static bool IsExempt(PathString path) =>
        path.Equals(HealthEndpoint.Path, StringComparison.Ordinal) ||
        path.StartsWithSegments("/grpc.health.v1.Health", StringComparison.Ordinal);

    public static IApplicationBuilder UseBearerToken(this IApplicationBuilder app, SharedToken token, Action<string> log)
    {
        var refusals = new RefusalLog(log);
        return app.Use(async (context, next) =>
        {
            string? authorization = context.Request.Headers.Authorization;
            if (IsExempt(context.Request.Path) || token.Matches(authorization))
            {
                await next(context);
                return;
            }
            var connection = context.Connection;
            refusals.Refused($"{connection.RemoteIpAddress}:{connection.RemotePort}", Printable(context.Request.Path),
                authorization is null ? "no bearer token" : "wrong bearer token");
            // A trailers-only gRPC response: HTTP 200 with the status in the headers and no body.
            context.Response.StatusCode = StatusCodes.Status200OK;
            context.Response.ContentType = "application/grpc";
            context.Response.Headers["grpc-status"] = ((int)Grpc.Core.StatusCode.Unauthenticated).ToString(System.Globalization.CultureInfo.InvariantCulture);
            context.Response.Headers["grpc-message"] = "missing or wrong bearer token (set DISTTRAIN_TOKEN or --token-file to the deployment's secret)";
        });
    }

    private static string Printable(PathString path) =>
        new((path.Value ?? "").Take(80).Select(c => char.IsControl(c) ? '?' : c).ToArray());

    /// <summary>At most <see cref="Burst"/> lines a minute; the rest are counted and reported with the next line.</summary>
    private sealed class RefusalLog(Action<string> log)
    {
        private const int Burst = 20;
        private readonly Stopwatch _window = Stopwatch.StartNew();
        private int _logged, _suppressed;

        public void Refused(string peer, string path, string reason)
        {
            int suppressed;
            lock (this)
            {
                if (_window.Elapsed > TimeSpan.FromMinutes(1))
                {
                    _window.Restart();
                    _logged = 0;
                }
                if (_logged >= Burst)
                {
                    _suppressed++;
                    return;
                }
                _logged++;
                suppressed = _suppressed;
                _suppressed = 0;
            }
            log($"refused an unauthenticated call to {path} from {peer}: {reason}" +
                (suppressed > 0 ? $" ({suppressed} more refusals not logged)" : ""));
        }
    }
}
