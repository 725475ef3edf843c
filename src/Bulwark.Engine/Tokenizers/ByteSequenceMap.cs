using System.Diagnostics.CodeAnalysis;

namespace Bulwark.Engine.Tokenizers;

/// <summary>
/// Token bytes to id, looked up by span so the encode loop allocates nothing.
/// </summary>
internal sealed class ByteSequenceMap
{
    private readonly Dictionary<byte[], int> _ids;
    private readonly Dictionary<byte[], int>.AlternateLookup<ReadOnlySpan<byte>> _bySpan;

    public ByteSequenceMap(int capacity)
    {
        _ids = new Dictionary<byte[], int>(capacity, ByteArrayComparer.Instance);
        _bySpan = _ids.GetAlternateLookup<ReadOnlySpan<byte>>();
    }

    public int Count => _ids.Count;

    /// <summary>Adds the mapping unless the bytes are already mapped (the first id wins, as in llama.cpp's map).</summary>
    public bool TryAdd(byte[] bytes, int id) => _ids.TryAdd(bytes, id);

    public bool TryGet(ReadOnlySpan<byte> bytes, out int id) => _bySpan.TryGetValue(bytes, out id);

    public int GetOrMinusOne(ReadOnlySpan<byte> bytes) => _bySpan.TryGetValue(bytes, out var id) ? id : -1;

    private sealed class ByteArrayComparer : IEqualityComparer<byte[]>, IAlternateEqualityComparer<ReadOnlySpan<byte>, byte[]>
    {
        public static readonly ByteArrayComparer Instance = new();

        public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);

        public int GetHashCode(byte[] obj) => Hash(obj);

        public bool Equals(ReadOnlySpan<byte> alternate, byte[] other) => alternate.SequenceEqual(other);

        public int GetHashCode(ReadOnlySpan<byte> alternate) => Hash(alternate);

        public byte[] Create(ReadOnlySpan<byte> alternate) => alternate.ToArray();

        // HashCode is seeded per process, so request text cannot be crafted to collide.
        private static int Hash(ReadOnlySpan<byte> bytes)
        {
            var hash = new HashCode();
            hash.AddBytes(bytes);
            return hash.ToHashCode();
        }
    }
}

/// <summary>Throw helpers kept out of hot methods so they stay small enough to inline.</summary>
internal static class TokenizerThrow
{
    [DoesNotReturn]
    public static void IdOutOfRange(int id, int vocabSize) =>
        throw new ArgumentOutOfRangeException("id", id, $"token id must be between 0 and {vocabSize - 1}; got {id}");
}
