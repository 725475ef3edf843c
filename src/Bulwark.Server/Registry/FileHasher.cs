using System.Buffers;
using System.Security.Cryptography;
using System.Text;

namespace Bulwark.Server.Registry;

/// <summary>
/// Streams files through SHA-256 (and Git's blob SHA-1, which a hub publishes for small non-LFS
/// files) without reading them whole. Progress reports bytes hashed so far.
/// </summary>
public static class FileHasher
{
    // Perf: 1 MiB reads keep the hash at disk speed; a pooled buffer keeps it allocation-free.
    private const int BufferSize = 1 << 20;

    public static async Task<string> Sha256Async(string path, IProgress<long>? progress = null, CancellationToken ct = default)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        await HashFileAsync(path, hash, progress, ct).ConfigureAwait(false);
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>Git's object id of a file: SHA-1 over "blob {size}\0" followed by the content.</summary>
    public static async Task<string> GitBlobSha1Async(string path, CancellationToken ct = default)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA1);
        hash.AppendData(Encoding.ASCII.GetBytes($"blob {new FileInfo(path).Length}\0"));
        await HashFileAsync(path, hash, null, ct).ConfigureAwait(false);
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    public static string Sha256(ReadOnlySpan<byte> data) => Convert.ToHexStringLower(SHA256.HashData(data));

    private static async Task HashFileAsync(string path, IncrementalHash hash, IProgress<long>? progress, CancellationToken ct)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan | FileOptions.Asynchronous);
            long total = 0;
            int read;
            while ((read = await stream.ReadAsync(buffer.AsMemory(0, BufferSize), ct).ConfigureAwait(false)) > 0)
            {
                hash.AppendData(buffer, 0, read);
                total += read;
                progress?.Report(total);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
