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
    private readonly string?[] _tenantOf;
    private readonly bool[] _cached;
    private readonly int[] _tokens;
    private readonly int _blockSize;

    public PrefixCache(int capacity, int blockSize)
    {
        _blockSize = blockSize;
        _hashOf = new BlockHash[capacity];
        _tenantOf = new string?[capacity];
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
    public void Publish(int block, BlockHash hash, ReadOnlySpan<int> tokens, string tenant = "")
    {
        if (_cached[block] || !_blockByHash.TryAdd(hash, block))
            return;
        _cached[block] = true;
        _hashOf[block] = hash;
        _tenantOf[block] = tenant;
        tokens.CopyTo(_tokens.AsSpan(block * _blockSize, _blockSize));
    }

    /// <summary>Drops the entry of a block the pool is about to reuse.</summary>
    public void Evict(int block)
    {
        if (!_cached[block])
            return;
        _blockByHash.Remove(_hashOf[block]);
        _cached[block] = false;
        _tenantOf[block] = null;
    }

    /// <summary>The blocks cached for <paramref name="tenant"/> (every cached block when null).</summary>
    public List<int> BlocksOf(string? tenant)
    {
        var blocks = new List<int>();
        foreach (var block in _blockByHash.Values)
            if (tenant is null || _tenantOf[block] == tenant) blocks.Add(block);
        return blocks;
    }
}
