using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Bulwark.Server.Tests.Security;

/// <summary>
/// A private CA, a server certificate for 127.0.0.1 and client certificates, made in the test with
/// <see cref="CertificateRequest"/> (ECDSA P-256, valid for an hour) and written as PEM files.
/// </summary>
internal sealed class TestCertificates
{
    private TestCertificates(string folder) => Folder = folder;

    public string Folder { get; }
    public X509Certificate2 Ca { get; private init; } = null!;
    public string CaPath => Path.Combine(Folder, "ca.pem");
    public string ServerCertPath => Path.Combine(Folder, "server.pem");
    public string ServerKeyPath => Path.Combine(Folder, "server.key");

    public static TestCertificates Create(string folder)
    {
        var ca = CreateCa("Bulwark Test CA");
        var server = Issue(ca, "127.0.0.1", serverAuth: true);
        var certs = new TestCertificates(folder) { Ca = ca };
        File.WriteAllText(certs.CaPath, ca.ExportCertificatePem());
        File.WriteAllText(certs.ServerCertPath, server.ExportCertificatePem());
        File.WriteAllText(certs.ServerKeyPath, server.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
        return certs;
    }

    /// <summary>A client certificate issued by this CA.</summary>
    public X509Certificate2 Client(string name = "client") => Issue(Ca, name, serverAuth: false);

    public static X509Certificate2 CreateCa(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
    }

    public static X509Certificate2 Issue(X509Certificate2 ca, string name, bool serverAuth)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid(serverAuth ? "1.3.6.1.5.5.7.3.1" : "1.3.6.1.5.5.7.3.2")], false));
        if (serverAuth)
        {
            var san = new SubjectAlternativeNameBuilder();
            san.AddIpAddress(IPAddress.Loopback);
            san.AddDnsName("localhost");
            request.CertificateExtensions.Add(san.Build());
        }
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F;
        using var issued = request.Create(ca, DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddMinutes(50), serial);
        // Re-import through PKCS#12 so the key is usable by SslStream on every platform.
        using var withKey = issued.CopyWithPrivateKey(key);
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>Trusts exactly this CA for the server's certificate (not the machine's store).</summary>
    public bool ValidatesServer(X509Certificate2? server)
    {
        if (server is null) return false;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(Ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(server);
    }
}
