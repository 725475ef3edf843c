namespace Bulwark.Engine.KvCache;

/// <summary>
/// Maps the chained hash of a full block to the block holding its KV. The block's tokens are
/// kept and compared on every hit, so even a hash collision could not serve foreign KV.
/// Entries live until their block is handed out again by the pool (LRU eviction).
/// </summary>
internal sealed class PrefixCache
{
    private readonly Dictionary<BlockHash, int> _blockByHash = new();
    private readonly BlockHash[] _hashOf;
    private readonly bool[] _cached;
    private readonly int[] _tokens;
    private readonly int _blockSize;

    public PrefixCache(int capacity, int blockSize)
    {
        _blockSize = blockSize;
        _hashOf = new BlockHash[capacity];
        _cached = new bool[capacity];
        _tokens = new int[capacity * blockSize];
    }

    public int Count => _blockByHash.Count;

    public bool IsCached(int block) => _cached[block];

    public bool TryGet(BlockHash hash, ReadOnlySpan<int> tokens, out int block)
    {
        if (_blockByHash.TryGetValue(hash, out block) && tokens.SequenceEqual(_tokens.AsSpan(block * _blockSize, _blockSize)))
            return true;
        block = -1;
        return false;
    }

    /// <summary>Publishes a full, computed block. A second block with the same content stays private.</summary>
    public void Publish(int block, BlockHash hash, ReadOnlySpan<int> tokens)
    {
        if (_cached[block] || !_blockByHash.TryAdd(hash, block))
            return;
        _cached[block] = true;
        _hashOf[block] = hash;
        tokens.CopyTo(_tokens.AsSpan(block * _blockSize, _blockSize));
    }

    /// <summary>Drops the entry of a block the pool is about to reuse.</summary>
    public void Evict(int block)
    {
        if (!_cached[block])
            return;
        _blockByHash.Remove(_hashOf[block]);
        _cached[block] = false;
    }

    public void Clear()
    {
        _blockByHash.Clear();
        Array.Clear(_cached);
    }
}
