// The dashboard's access policy, kept apart from its HTTP code so it can be tested and wired by whoever hosts the
// dashboard: on loopback everything is allowed; bound elsewhere it is read-only, and everything but the status page
// and /healthz needs the deployment's bearer token. Binding elsewhere without a token is refused at start-up.
using System.Net;
using DistTrain.Core;
using DistTrain.Protos.Security;
using Microsoft.AspNetCore.Http;

namespace DistTrain.Coordinator.Security;

public enum DashboardAccess
{
    Allowed,
    /// <summary>401 with `WWW-Authenticate: Bearer`: the token is missing or wrong.</summary>
    Unauthorized,
    /// <summary>405: the dashboard is read-only off loopback.</summary>
    MethodNotAllowed,
    /// <summary>421: a loopback dashboard asked for under another host name (DNS rebinding).</summary>
    MisdirectedHost,
}

public sealed class DashboardSecurity
{
    /// <summary>
    /// Paths anyone who can reach the port may read: the status page (its HTML, script, style and the run summary
    /// it shows) and liveness. Histories, the live event stream and Prometheus metrics need the token.
    /// </summary>
    public static readonly IReadOnlySet<string> PublicPaths = new HashSet<string>(StringComparer.Ordinal)
        { "/", "/index.html", "/app.js", "/chart.js", "/style.css", "/api/status", "/healthz" };

    private readonly SharedToken? _token;

    private DashboardSecurity(bool loopback, SharedToken? token)
    {
        IsLoopback = loopback;
        _token = token;
    }

    /// <summary>True when the dashboard only listens on loopback (then the policy allows everything).</summary>
    public bool IsLoopback { get; }

    /// <summary>
    /// The policy for a dashboard bound to <paramref name="bindHost"/> ("127.0.0.1", "0.0.0.0", "::", a name);
    /// <paramref name="token"/> is the coordinator's (NodeSecurity.Token). Throws UserInputException for a
    /// non-loopback bind without a token, exactly as the gRPC servers do.
    /// </summary>
    public static DashboardSecurity Create(string bindHost, SharedToken? token)
    {
        bool loopback = NodeSecurity.IsLoopback(bindHost);
        if (!loopback && token is null)
            throw new UserInputException($"dashboard: binding {bindHost}, which is not a loopback address, needs a shared token " +
                $"({SecurityOptions.TokenFileVariable}, {SecurityOptions.TokenVariable} or --token-file); or bind 127.0.0.1");
        return new DashboardSecurity(loopback, token);
    }

    /// <summary>
    /// Decides one request: its method, path (no query string), `authorization` header and `Host` header. On loopback
    /// a page from another site can reach the port through a DNS name rebound to 127.0.0.1; its Host header is that
    /// name, so only loopback hosts are served there.
    /// </summary>
    public DashboardAccess Decide(string method, string path, string? authorization, string? host = "127.0.0.1")
    {
        if (IsLoopback) return IsLoopbackHost(host) ? DashboardAccess.Allowed : DashboardAccess.MisdirectedHost;
        if (!HttpMethods.IsGet(method) && !HttpMethods.IsHead(method)) return DashboardAccess.MethodNotAllowed;
        if (PublicPaths.Contains(path)) return DashboardAccess.Allowed;
        return _token!.Matches(authorization) ? DashboardAccess.Allowed : DashboardAccess.Unauthorized;
    }

    /// <summary>"127.0.0.1:8080", "localhost", "[::1]:8080": a Host header naming this machine's loopback.</summary>
    public static bool IsLoopbackHost(string? host)
    {
        if (string.IsNullOrEmpty(host)) return false;
        string name = host.StartsWith('[') ? host[..(host.IndexOf(']') + 1)]
            : host.LastIndexOf(':') is var colon and > 0 ? host[..colon] : host;
        return name.Trim('[', ']') is var bare && (bare.Equals("localhost", StringComparison.OrdinalIgnoreCase) || NodeSecurity.IsLoopback(bare));
    }

    /// <summary>The HTTP status to answer for a refusal (0 when allowed).</summary>
    public static int StatusCode(DashboardAccess access) => access switch
    {
        DashboardAccess.Unauthorized => (int)HttpStatusCode.Unauthorized,
        DashboardAccess.MethodNotAllowed => (int)HttpStatusCode.MethodNotAllowed,
        DashboardAccess.MisdirectedHost => (int)HttpStatusCode.MisdirectedRequest,
        _ => 0,
    };
}
