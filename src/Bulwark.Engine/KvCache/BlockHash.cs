using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Bulwark.Engine.KvCache;

/// <summary>
/// SHA-256 of one full KV block chained to the hash of the block before it. The chain starts
/// at a root derived from the cache salt (the tenant by default), so equal token prefixes of
/// different tenants never produce equal hashes. A cryptographic hash is used on purpose:
/// vLLM's CVE-2025-25183 let crafted prompts collide on Python's <c>hash()</c> and read
/// another request's cached blocks.
/// </summary>
internal readonly record struct BlockHash(ulong A, ulong B, ulong C, ulong D)
{
    private const int MaxBlockTokens = 256;

    /// <summary>The chain root for one cache salt; domain-separated from block hashes.</summary>
    public static BlockHash Root(string salt)
    {
        var bytes = Encoding.UTF8.GetBytes("bulwark-kv-root-v1\0" + salt);
        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData(bytes, digest);
        return FromBytes(digest);
    }

    /// <summary>Hash of a full block: SHA-256(previous hash ‖ token ids as little-endian int32).</summary>
    public static BlockHash Chain(BlockHash previous, ReadOnlySpan<int> tokens)
    {
        if (tokens.Length > MaxBlockTokens)
            throw new ArgumentOutOfRangeException(nameof(tokens), $"a KV block holds at most {MaxBlockTokens} tokens; got {tokens.Length}");
        Span<byte> buffer = stackalloc byte[32 + 4 * MaxBlockTokens];
        previous.Write(buffer);
        for (var i = 0; i < tokens.Length; i++)
            BinaryPrimitives.WriteInt32LittleEndian(buffer.Slice(32 + 4 * i, 4), tokens[i]);
        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData(buffer[..(32 + 4 * tokens.Length)], digest);
        return FromBytes(digest);
    }

    private void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(destination, A);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..], B);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[16..], C);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[24..], D);
    }

    private static BlockHash FromBytes(ReadOnlySpan<byte> digest) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(digest),
        BinaryPrimitives.ReadUInt64LittleEndian(digest[8..]),
        BinaryPrimitives.ReadUInt64LittleEndian(digest[16..]),
        BinaryPrimitives.ReadUInt64LittleEndian(digest[24..]));
}
