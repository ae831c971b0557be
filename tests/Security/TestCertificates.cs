// A throw-away certificate authority and the node certificates it issues (ECDSA P-256; server and client use;
// names 127.0.0.1 and localhost), written as the PEM files the programs' --tls-* settings take.
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace DistTrain.Tests.Security;

public sealed class TestCertificates : IDisposable
{
    private readonly string _dir;
    private readonly ECDsa _caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly X509Certificate2 _ca;

    public TestCertificates(string dir, string name)
    {
        _dir = dir;
        var request = new CertificateRequest($"CN={name}", _caKey, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        _ca = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        CaPath = Path.Combine(dir, $"{name}.pem");
        File.WriteAllText(CaPath, _ca.ExportCertificatePem());
    }

    public string CaPath { get; }

    /// <summary>Issues a certificate for <paramref name="node"/>; returns the certificate and key PEM paths.</summary>
    public (string Certificate, string Key) Issue(string node)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={node}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(_ca, true, false));
        // Never past the authority's own end of validity (issued seconds earlier with the same 30 days).
        var notAfter = DateTimeOffset.UtcNow.AddDays(30);
        if (notAfter > _ca.NotAfter.ToUniversalTime()) notAfter = _ca.NotAfter.ToUniversalTime();
        using var certificate = request.Create(_ca, DateTimeOffset.UtcNow.AddDays(-1), notAfter, RandomNumberGenerator.GetBytes(16));
        string certificatePath = Path.Combine(_dir, $"{node}.crt.pem"), keyPath = Path.Combine(_dir, $"{node}.key.pem");
        File.WriteAllText(certificatePath, certificate.ExportCertificatePem());
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
        return (certificatePath, keyPath);
    }

    public void Dispose()
    {
        _ca.Dispose();
        _caKey.Dispose();
    }
}
