using System.Security.Cryptography;
using NSec.Cryptography;

namespace Bulwark.Server.Registry;

/// <summary>
/// Ed25519 keys for signing manifests, kept in the data directory: <c>&lt;id&gt;.key</c> (private,
/// readable only by the owner) and <c>trusted/&lt;id&gt;.pub</c> (public keys whose signatures
/// the server accepts). A key id is the first 16 hex digits of SHA-256 of the raw public key.
/// </summary>
public sealed class SigningKeys(string folder)
{
    public const string Algorithm = "ed25519";
    private static readonly SignatureAlgorithm Ed25519 = SignatureAlgorithm.Ed25519;

    public string Folder { get; } = folder;

    public string TrustedFolder => Path.Combine(Folder, "trusted");

    /// <summary>Creates a new key pair, trusts its public key, and returns the key id.</summary>
    public string Generate()
    {
        using var key = Key.Create(Ed25519, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
        var publicKey = key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        var id = KeyId(publicKey);
        Directory.CreateDirectory(TrustedFolder);
        var privatePath = Path.Combine(Folder, id + ".key");
        var privateKey = key.Export(KeyBlobFormat.RawPrivateKey);
        try
        {
            WritePrivate(privatePath, Convert.ToBase64String(privateKey));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(privateKey);
        }
        File.WriteAllText(Path.Combine(TrustedFolder, id + ".pub"), Convert.ToBase64String(publicKey) + "\n");
        return id;
    }

    /// <summary>The ids of the private keys in this folder (keys this installation can sign with).</summary>
    public IReadOnlyList<string> SigningKeyIds() =>
        Directory.Exists(Folder)
            ? Directory.GetFiles(Folder, "*.key").Select(p => Path.GetFileNameWithoutExtension(p)).Order(StringComparer.Ordinal).ToList()
            : [];

    /// <summary>Signs the manifest's canonical bytes with the named key (or the only key there is).</summary>
    public ModelManifest Sign(ModelManifest manifest, string? keyId = null)
    {
        var ids = SigningKeyIds();
        keyId ??= ids.Count switch
        {
            1 => ids[0],
            0 => throw new RegistryException($"no signing key in {Folder}: run 'bulwark models keygen' first"),
            _ => throw new RegistryException($"several signing keys in {Folder} ({string.Join(", ", ids)}): name one with --key"),
        };
        if (!ids.Contains(keyId)) throw new RegistryException($"signing key '{keyId}' not found in {Folder}");
        var raw = Convert.FromBase64String(File.ReadAllText(Path.Combine(Folder, keyId + ".key")).Trim());
        try
        {
            using var key = Key.Import(Ed25519, raw, KeyBlobFormat.RawPrivateKey);
            var signature = Ed25519.Sign(key, manifest.CanonicalBytes());
            return manifest with { Signature = new ManifestSignature(keyId, Algorithm, Convert.ToBase64String(signature)) };
        }
        finally
        {
            CryptographicOperations.ZeroMemory(raw);
        }
    }

    /// <summary>Checks the manifest's signature against the trusted public keys; returns null when valid, else why not.</summary>
    public string? CheckSignature(ModelManifest manifest)
    {
        if (manifest.Signature is not { } sig) return "the manifest is not signed";
        if (sig.Algorithm != Algorithm) return $"signature algorithm '{sig.Algorithm}' is not supported (only {Algorithm})";
        var pubPath = Path.Combine(TrustedFolder, sig.KeyId + ".pub");
        if (!IsSafeId(sig.KeyId) || !File.Exists(pubPath)) return $"signing key '{sig.KeyId}' is not trusted (no {pubPath})";
        byte[] signature;
        PublicKey publicKey;
        try
        {
            signature = Convert.FromBase64String(sig.Value);
            publicKey = PublicKey.Import(Ed25519, Convert.FromBase64String(File.ReadAllText(pubPath).Trim()), KeyBlobFormat.RawPublicKey);
        }
        catch (Exception e) when (e is FormatException or ArgumentException)
        {
            return $"signature or trusted key '{sig.KeyId}' is malformed";
        }
        return Ed25519.Verify(publicKey, manifest.CanonicalBytes(), signature)
            ? null
            : $"signature by key '{sig.KeyId}' does not match the manifest (the manifest was changed after signing)";
    }

    private static bool IsSafeId(string id) => id.Length is > 0 and <= 64 && id.All(char.IsAsciiHexDigitLower);

    private static string KeyId(byte[] publicKey) => Convert.ToHexStringLower(SHA256.HashData(publicKey))[..16];

    private static void WritePrivate(string path, string content)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using var stream = new FileStream(path, options);
        using var writer = new StreamWriter(stream);
        writer.Write(content);
    }
}
