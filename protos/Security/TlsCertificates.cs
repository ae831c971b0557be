// Optional TLS: this node's certificate and key (PEM) for its server and, with mutual TLS, as its client
// certificate; and the CA (PEM) that peers' certificates must chain to. With a configured CA any certificate it
// issued is accepted whatever its host name: the CA is the deployment's own, and scaled workers have no fixed names.
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using DistTrain.Core;

namespace DistTrain.Protos.Security;

public sealed class TlsCertificates
{
    private readonly X509Certificate2Collection? _authority;

    private TlsCertificates(X509Certificate2? certificate, X509Certificate2Collection? authority, bool mutual)
    {
        Certificate = certificate;
        _authority = authority;
        Mutual = mutual;
    }

    /// <summary>This node's certificate with its private key; null when it only verifies peers.</summary>
    public X509Certificate2? Certificate { get; }
    /// <summary>Servers demand a client certificate from the CA, and clients present theirs.</summary>
    public bool Mutual { get; }

    /// <summary>Null when no TLS setting is given.</summary>
    public static TlsCertificates? Load(SecurityOptions options)
    {
        if (options.TlsCert is null && options.TlsKey is null && options.TlsCa is null)
        {
            if (options.TlsMutual) throw new UserInputException("--tls-mutual needs --tls-cert, --tls-key and --tls-ca");
            return null;
        }
        if ((options.TlsCert is null) != (options.TlsKey is null))
            throw new UserInputException("--tls-cert and --tls-key (DISTTRAIN_TLS_CERT, DISTTRAIN_TLS_KEY) go together");
        if (options.TlsMutual && (options.TlsCert is null || options.TlsCa is null))
            throw new UserInputException("--tls-mutual needs --tls-cert, --tls-key and --tls-ca");
        X509Certificate2? certificate = null;
        X509Certificate2Collection? authority = null;
        try
        {
            if (options.TlsCert is { } cert && options.TlsKey is { } key)
            {
                using var pem = X509Certificate2.CreateFromPemFile(cert, key);
                // Re-imported so the key is not ephemeral: SslStream needs a persisted key on some platforms.
                certificate = X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
            }
            if (options.TlsCa is { } ca)
            {
                authority = [];
                authority.ImportFromPemFile(ca);
                if (authority.Count == 0) throw new UserInputException($"--tls-ca {ca} holds no PEM certificate");
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            throw new UserInputException($"cannot load the TLS certificate, key or CA ({options.TlsCert}, {options.TlsKey}, {options.TlsCa}): {e.Message.Split('\n')[0]}");
        }
        return new TlsCertificates(certificate, authority, options.TlsMutual);
    }

    /// <summary>A TLS client's options for a link to <paramref name="host"/>: the peer verified as <see cref="Verify"/> does.</summary>
    public SslClientAuthenticationOptions ClientOptions(string host) => new()
    {
        TargetHost = host,
        EnabledSslProtocols = System.Security.Authentication.SslProtocols.Tls12 | System.Security.Authentication.SslProtocols.Tls13,
        RemoteCertificateValidationCallback = (_, peer, _, errors) => Verify(peer, errors),
        ClientCertificates = Mutual && Certificate is { } certificate ? [certificate] : null,
    };

    /// <summary>
    /// A TLS server's options (this node's certificate; a client certificate from the CA demanded when mutual), or
    /// null when this node has no certificate.
    /// </summary>
    public SslServerAuthenticationOptions? ServerOptions() => Certificate is not { } certificate ? null : new()
    {
        ServerCertificate = certificate,
        EnabledSslProtocols = System.Security.Authentication.SslProtocols.Tls12 | System.Security.Authentication.SslProtocols.Tls13,
        ClientCertificateRequired = Mutual,
        RemoteCertificateValidationCallback = Mutual ? (_, peer, _, errors) => Verify(peer, errors) : null,
    };

    /// <summary>
    /// Accepts a peer's certificate: with a configured CA it must chain to that CA (host names are not checked);
    /// without one the platform's verdict stands, host name included.
    /// </summary>
    public bool Verify(X509Certificate? peer, SslPolicyErrors errors)
    {
        if (peer is null) return false;
        if (_authority is null) return errors == SslPolicyErrors.None;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(_authority);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var certificate = X509CertificateLoader.LoadCertificate(peer.GetRawCertData());
        return chain.Build(certificate);
    }
}
