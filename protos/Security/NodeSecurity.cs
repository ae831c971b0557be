// How one node — the coordinator or a worker — secures its server and its outgoing calls: the shared token on every
// RPC in both directions, optional TLS, and the start-up policy: without a token a node may only bind loopback.
using System.Net;
using System.Net.Security;
using DistTrain.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace DistTrain.Protos.Security;

public sealed class NodeSecurity(SharedToken? token, TlsCertificates? tls)
{
    /// <summary>No token, no TLS: loopback-only setups and tests.</summary>
    public static NodeSecurity None { get; } = new(null, null);

    public SharedToken? Token { get; } = token;
    public TlsCertificates? Tls { get; } = tls;
    /// <summary>The server speaks TLS, so its URL is https.</summary>
    public bool ServesTls => Tls?.Certificate is not null;
    public string Scheme => ServesTls ? "https" : "http";

    /// <summary>
    /// Loads the token and certificates and applies the policy: a server bound to anything but loopback without a
    /// token is refused (anyone on the network could feed it work or read its weights); on loopback it only warns.
    /// </summary>
    public static NodeSecurity Create(SecurityOptions options, string bindHost, string role, Action<string> warn)
    {
        SharedToken? token = options.TokenFile is { } file ? SharedToken.FromFile(file)
            : options.InlineToken is { Length: > 0 } inline ? SharedToken.Parse(inline, SecurityOptions.TokenVariable)
            : null;
        var tls = TlsCertificates.Load(options);
        if (token is null)
        {
            if (!IsLoopback(bindHost))
                throw new UserInputException($"{role}: binding {bindHost}, which is not a loopback address, needs a shared token: " +
                    $"set {SecurityOptions.TokenFileVariable}, {SecurityOptions.TokenVariable} or --token-file (see docs/deployment.md)");
            warn($"warning: the {role} has NO shared token ({SecurityOptions.TokenVariable} / --token-file): any local process can call it. " +
                 $"Allowed only because it binds the loopback address {bindHost}.");
        }
        return new NodeSecurity(token, tls);
    }

    public NodeSecurity WithToken(SharedToken replacement) => new(replacement, Tls);

    /// <summary>"localhost" or a loopback IP; wildcards (0.0.0.0, ::, *) and other names are not.</summary>
    public static bool IsLoopback(string host) =>
        host.Equals("localhost", StringComparison.OrdinalIgnoreCase) ||
        (IPAddress.TryParse(host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));

    /// <summary>Turns on TLS for a Kestrel endpoint when this node has a certificate.</summary>
    public void ConfigureEndpoint(ListenOptions listen)
    {
        if (Tls is not { Certificate: { } certificate } tls) return;
        listen.UseHttps(new HttpsConnectionAdapterOptions
        {
            ServerCertificate = certificate,
            SslProtocols = System.Security.Authentication.SslProtocols.Tls12 | System.Security.Authentication.SslProtocols.Tls13,
            ClientCertificateMode = tls.Mutual ? ClientCertificateMode.RequireCertificate : ClientCertificateMode.NoCertificate,
            ClientCertificateValidation = (peer, _, errors) => tls.Verify(peer, errors),
        });
    }

    /// <summary>The token check in front of every endpoint, and /healthz beside them.</summary>
    public void Protect(WebApplication app, Action<string> log)
    {
        if (Token is { } token) app.UseBearerToken(token, log);
        HealthEndpoint.Map(app);
    }

    /// <summary>A handler for this node's outgoing channels: verifies the peer's certificate and sends the token.</summary>
    public HttpMessageHandler CreateClientHandler(SocketsHttpHandler? sockets = null)
    {
        sockets ??= new SocketsHttpHandler();
        if (Tls is { } tls)
        {
            sockets.SslOptions.RemoteCertificateValidationCallback = (_, peer, _, errors) => tls.Verify(peer, errors);
            if (tls.Mutual && tls.Certificate is { } certificate) sockets.SslOptions.ClientCertificates = [certificate];
        }
        return Token is { } secret ? new BearerTokenHandler(secret, sockets) : sockets;
    }

    public override string ToString() =>
        $"{(Token is { } t ? "shared token from " + t.Source : "no shared token")}; " +
        $"{(ServesTls ? "TLS" : "plaintext")}{(Tls is { Mutual: true } ? " with client certificates" : "")}";

    internal static bool AcceptAnyCertificate(object? sender, System.Security.Cryptography.X509Certificates.X509Certificate? certificate,
        System.Security.Cryptography.X509Certificates.X509Chain? chain, SslPolicyErrors errors) => true;
}
