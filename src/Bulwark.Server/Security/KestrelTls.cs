using System.Security.Cryptography.X509Certificates;
using System.Security.Cryptography;
using Bulwark.Server.Audit;
using Bulwark.Server.Redaction;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Configuration;

namespace Bulwark.Server.Security;

/// <summary>
/// Turns <see cref="TlsOptions"/> into Kestrel's HTTPS settings. Certificates are loaded and checked
/// at start-up, so a wrong path or password stops the server with a clear message instead of
/// failing the first handshake. With mTLS, a client certificate is validated against the
/// configured CA only (not the machine's trust store) inside the handshake, so a client without
/// one never gets to send a byte of HTTP.
/// </summary>
public static class KestrelTls
{
    private static readonly Oid ClientAuthentication = new("1.3.6.1.5.5.7.3.2", "Client Authentication");

    /// <summary>Reads <c>Bulwark:Tls</c>; throws <see cref="InvalidOperationException"/> listing every problem.</summary>
    public static TlsOptions Read(IConfiguration configuration)
    {
        var options = configuration.GetSection(TlsOptions.Section).Get<TlsOptions>() ?? new TlsOptions();
        SecretRedactor.AddKnownSecret(options.CertificatePassword);
        var problems = options.Validate().ToList();
        if (problems.Count > 0) throw new InvalidOperationException("Invalid TLS configuration: " + string.Join("; ", problems));
        return options;
    }

    /// <summary>
    /// Reads <c>Bulwark:Tls</c> and, when a certificate is configured, makes every HTTPS endpoint use it.
    /// The listen URL must then use the <c>https</c> scheme (<see cref="Scheme"/>). Returns the options.
    /// </summary>
    public static TlsOptions UseBulwarkTls(this WebApplicationBuilder builder)
    {
        var options = Read(builder.Configuration);
        if (!options.Enabled) return options;
        builder.WebHost.UseKestrelHttpsConfiguration(); // a slim builder leaves https:// addresses off
        builder.WebHost.ConfigureKestrel(kestrel => Configure(kestrel, options));
        return options;
    }

    /// <summary><c>https</c> when TLS is configured, else <c>http</c>.</summary>
    public static string Scheme(TlsOptions options) => options.Enabled ? "https" : "http";

    /// <summary>Applies <paramref name="options"/> to every HTTPS endpoint of <paramref name="kestrel"/>.</summary>
    public static void Configure(KestrelServerOptions kestrel, TlsOptions options)
    {
        var certificate = LoadServerCertificate(options);
        var clientCas = string.IsNullOrWhiteSpace(options.ClientCaPath) ? null : LoadCas(options.ClientCaPath);
        kestrel.ConfigureHttpsDefaults(https => Apply(https, options, certificate, clientCas));
    }

    private static void Apply(HttpsConnectionAdapterOptions https, TlsOptions options, X509Certificate2 certificate, X509Certificate2Collection? clientCas)
    {
        https.ServerCertificate = certificate;
        https.SslProtocols = options.Protocols;
        if (clientCas is null) return;
        https.ClientCertificateMode = options.RequireClientCertificate ? ClientCertificateMode.RequireCertificate : ClientCertificateMode.AllowCertificate;
        // Revocation: our CA is private and short-lived certificates are the norm for mTLS; a CRL
        // check would need the CA's distribution point to be reachable from every replica.
        https.CheckCertificateRevocation = false;
        https.ClientCertificateValidation = (client, _, _) => IsIssuedBy(client, clientCas);
    }

    /// <summary>True when <paramref name="client"/> chains to one of <paramref name="cas"/>, is in date, and may authenticate clients.</summary>
    public static bool IsIssuedBy(X509Certificate2 client, X509Certificate2Collection cas)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(cas);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.ApplicationPolicy.Add(ClientAuthentication);
        chain.ChainPolicy.DisableCertificateDownloads = true;
        try
        {
            return chain.Build(client);
        }
        finally
        {
            foreach (var element in chain.ChainElements) if (!ReferenceEquals(element.Certificate, client)) element.Certificate.Dispose();
        }
    }

    private static X509Certificate2 LoadServerCertificate(TlsOptions options)
    {
        var path = options.CertificatePath!;
        try
        {
            var certificate = TlsOptions.IsPkcs12(path)
                ? X509CertificateLoader.LoadPkcs12FromFile(path, options.CertificatePassword)
                : string.IsNullOrEmpty(options.CertificatePassword)
                    ? X509Certificate2.CreateFromPemFile(path, options.KeyPath)
                    : X509Certificate2.CreateFromEncryptedPemFile(path, options.CertificatePassword, options.KeyPath);
            if (!certificate.HasPrivateKey)
                throw new InvalidOperationException($"{TlsOptions.Section}:CertificatePath '{path}' has no private key");
            return certificate;
        }
        catch (CryptographicException e)
        {
            // The message names the file; the password, if wrong, is not repeated.
            throw new InvalidOperationException($"{TlsOptions.Section}: cannot load the server certificate from '{path}': {e.Message}", e);
        }
    }

    private static X509Certificate2Collection LoadCas(string path)
    {
        var cas = new X509Certificate2Collection();
        try { cas.ImportFromPemFile(path); }
        catch (CryptographicException e) { throw new InvalidOperationException($"{TlsOptions.Section}:ClientCaPath '{path}' is not PEM certificates: {e.Message}", e); }
        if (cas.Count == 0) throw new InvalidOperationException($"{TlsOptions.Section}:ClientCaPath '{path}' holds no certificate");
        return cas;
    }
}
