using System.Security.Cryptography;
using System.Text;

namespace Bulwark.Server.Security;

/// <summary>
/// Stores keys only as HMAC-SHA-256(server secret, key). A stolen key table is useless without the
/// secret, and a fast hash is right here because keys carry 260 bits of entropy (no dictionary to
/// slow down). Verification compares digests in constant time (the flaw of CVE-2025-59425).
/// The secret is held in a pinned array (the GC never copies it elsewhere) that disposal zeroes.
/// </summary>
public sealed class ApiKeyHasher : IDisposable
{
    private readonly byte[] _secret;
    private volatile bool _disposed;

    /// <summary>Copies <paramref name="serverSecret"/>; the caller clears its own copy.</summary>
    public ApiKeyHasher(ReadOnlySpan<byte> serverSecret)
    {
        if (serverSecret.Length < 32)
            throw new ArgumentException($"the HMAC server secret must be at least 32 bytes; got {serverSecret.Length}", nameof(serverSecret));
        _secret = GC.AllocateUninitializedArray<byte>(serverSecret.Length, pinned: true);
        serverSecret.CopyTo(_secret);
    }

    /// <summary>Zeroes the secret; hashing afterwards throws.</summary>
    public void Dispose()
    {
        _disposed = true;
        CryptographicOperations.ZeroMemory(_secret);
    }

    /// <summary>Test-only: the held secret, to see that disposal zeroed it.</summary>
    internal ReadOnlySpan<byte> HeldSecret => _secret;

    public string Hash(ReadOnlySpan<char> key)
    {
        Span<byte> digest = stackalloc byte[32];
        Compute(key, digest);
        return Convert.ToBase64String(digest);
    }

    /// <summary>True when <paramref name="key"/> hashes to <paramref name="storedHash"/>; constant time in the digest.</summary>
    public bool Verify(ReadOnlySpan<char> key, ReadOnlySpan<byte> storedHash)
    {
        Span<byte> digest = stackalloc byte[32];
        Compute(key, digest);
        return CryptographicOperations.FixedTimeEquals(digest, storedHash);
    }

    private void Compute(ReadOnlySpan<char> key, Span<byte> digest)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        // Perf: keys are short ASCII, so the UTF-8 bytes fit on the stack; no per-request allocation.
        Span<byte> utf8 = stackalloc byte[512];
        var length = key.Length <= 128 ? Encoding.UTF8.GetBytes(key, utf8) : -1;
        if (length < 0)
        {
            HMACSHA256.HashData(_secret, Encoding.UTF8.GetBytes(key.ToString()), digest);
            return;
        }
        HMACSHA256.HashData(_secret, utf8[..length], digest);
        utf8[..length].Clear(); // the key's bytes do not stay in the stack frame
    }
}
