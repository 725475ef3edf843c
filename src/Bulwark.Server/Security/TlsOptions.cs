using System.Security.Authentication;

namespace Bulwark.Server.Security;

/// <summary>
/// <c>Bulwark:Tls</c> in configuration: HTTPS from certificate files, and optionally mutual TLS
/// (every client must present a certificate issued by <see cref="ClientCaPath"/>). Applied to
/// Kestrel by <see cref="KestrelTls"/>; off when <see cref="CertificatePath"/> is empty.
/// </summary>
public sealed class TlsOptions
{
    public const string Section = "Bulwark:Tls";

    /// <summary>Server certificate: PEM (with <see cref="KeyPath"/>) or PKCS#12 (<c>.pfx</c>/<c>.p12</c>, key inside).</summary>
    public string? CertificatePath { get; set; }

    /// <summary>PEM private key of a PEM certificate (PKCS#8 or RSA/EC; encrypted when <see cref="CertificatePassword"/> is set).</summary>
    public string? KeyPath { get; set; }

    /// <summary>Password of the PKCS#12 file or of an encrypted PEM key. A secret: masked in logs.</summary>
    public string? CertificatePassword { get; set; }

    /// <summary>Refuse, at the TLS handshake, every client without a certificate that chains to <see cref="ClientCaPath"/>.</summary>
    public bool RequireClientCertificate { get; set; }

    /// <summary>PEM file holding the CA certificate(s) client certificates must chain to (required with mTLS).</summary>
    public string? ClientCaPath { get; set; }

    /// <summary>Oldest protocol accepted: <c>Tls12</c> (default) or <c>Tls13</c>.</summary>
    public string MinimumProtocol { get; set; } = "Tls12";

    public bool Enabled => !string.IsNullOrWhiteSpace(CertificatePath);

    public SslProtocols Protocols => MinimumProtocol.Equals("Tls13", StringComparison.OrdinalIgnoreCase)
        ? SslProtocols.Tls13
        : SslProtocols.Tls12 | SslProtocols.Tls13;

    /// <summary>Every problem with these settings, each naming the key and value; empty when usable.</summary>
    public IEnumerable<string> Validate()
    {
        if (!Enabled)
        {
            if (RequireClientCertificate || !string.IsNullOrWhiteSpace(ClientCaPath) || !string.IsNullOrWhiteSpace(KeyPath))
                yield return $"{Section}:CertificatePath is required when KeyPath, ClientCaPath or RequireClientCertificate is set (mTLS needs TLS)";
            yield break;
        }
        if (!File.Exists(CertificatePath)) yield return $"{Section}:CertificatePath: no file at '{CertificatePath}'";
        var pkcs12 = IsPkcs12(CertificatePath!);
        if (!pkcs12 && string.IsNullOrWhiteSpace(KeyPath)) yield return $"{Section}:KeyPath is required with a PEM certificate ('{CertificatePath}')";
        if (!string.IsNullOrWhiteSpace(KeyPath) && !File.Exists(KeyPath)) yield return $"{Section}:KeyPath: no file at '{KeyPath}'";
        if (RequireClientCertificate && string.IsNullOrWhiteSpace(ClientCaPath))
            yield return $"{Section}:ClientCaPath is required when RequireClientCertificate is true";
        if (!string.IsNullOrWhiteSpace(ClientCaPath) && !File.Exists(ClientCaPath)) yield return $"{Section}:ClientCaPath: no file at '{ClientCaPath}'";
        if (!MinimumProtocol.Equals("Tls12", StringComparison.OrdinalIgnoreCase) && !MinimumProtocol.Equals("Tls13", StringComparison.OrdinalIgnoreCase))
            yield return $"{Section}:MinimumProtocol must be Tls12 or Tls13; got '{MinimumProtocol}'";
    }

    internal static bool IsPkcs12(string path) =>
        path.EndsWith(".pfx", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".p12", StringComparison.OrdinalIgnoreCase);
}
