using System.Diagnostics;
using Bulwark.Engine.KvCache;

namespace Bulwark.Engine.Serving.Scheduling;

/// <summary>
/// Gives sequences the KV blocks they need: reuses cached full blocks of the same salted prefix,
/// allocates new ones, shares blocks between forked sequences and copies a shared partial
/// block before a sequence writes into it (copy-on-write).
/// </summary>
/// <remarks>
/// A block handed out again never leaks its previous owner's KV: attention reads only the
/// positions below a sequence's length, and the step writes every such position of a fresh
/// block (from prefill, decode or a copy) before any query reads it. Nor does its memory keep it
/// (scrubbing): a block that held KV is cleared before it changes hands (<see cref="TakeScrubBeforeStep"/>,
/// which covers cached blocks when they are evicted), and a freed block that no cache keeps is queued
/// for the engine to clear when it is idle or a few per step (<see cref="TryTakeSweep"/>).
/// </remarks>
internal sealed class BlockAllocator
{
    private readonly BlockPool _pool;
    private readonly PrefixCache _prefix;
    // A block that may hold KV someone wrote (fresh pages are zero).
    private readonly bool[] _dirty;
    // Freed blocks no cache keeps, to clear off the decode path; stale entries are skipped when taken.
    private readonly Queue<int> _sweep = new();
    private readonly List<int> _scrubNow = [];

    /// <param name="window">
    /// The model's KV window when every layer is windowed (<see cref="Execution.IModelExecutor.KvWindow"/>): blocks wholly
    /// before the window of a sequence's next position are released as it advances (see <see cref="ReleaseOutsideWindow"/>); 0: never.
    /// </param>
    public BlockAllocator(int capacity, int blockSize, bool prefixCaching, int window = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(window);
        Window = window;
        if (blockSize is < 1 or > 256)
            throw new ArgumentOutOfRangeException(nameof(blockSize), $"block size must be between 1 and 256 tokens; got {blockSize}");
        BlockSize = blockSize;
        PrefixCaching = prefixCaching;
        _pool = new BlockPool(capacity);
        _prefix = new PrefixCache(capacity, blockSize);
        _dirty = new bool[capacity];
    }

    /// <summary>Blocks cleared so far: before they changed hands, and swept after they were freed.</summary>
    public long ScrubbedBlocks { get; private set; }

    /// <summary>Whether <paramref name="block"/> may still hold KV someone wrote.</summary>
    internal bool IsDirty(int block) => _dirty[block];

    internal bool IsCached(int block) => _prefix.IsCached(block);

    /// <summary>
    /// Blocks handed out since the last call that held someone else's KV: the engine clears them before the
    /// step that writes into them. The list is reused; read it before the next schedule.
    /// </summary>
    public List<int> TakeScrubBeforeStep()
    {
        ScrubbedBlocks += _scrubNow.Count;
        return _scrubNow;
    }

    /// <summary>After the engine cleared the blocks <see cref="TakeScrubBeforeStep"/> gave it.</summary>
    public void ScrubbedBeforeStep() => _scrubNow.Clear();

    /// <summary>The next freed block that still holds KV no cache keeps, or false when there is none.</summary>
    public bool TryTakeSweep(out int block)
    {
        while (_sweep.TryDequeue(out block))
        {
            // Handed out again since (then cleared before that step), cached again, or already clear: nothing to do.
            if (_pool.IsFree(block) && _dirty[block] && !_prefix.IsCached(block)) return true;
        }
        return false;
    }

    /// <summary>After the engine cleared a block <see cref="TryTakeSweep"/> gave it.</summary>
    public void Swept(int block)
    {
        _dirty[block] = false;
        ScrubbedBlocks++;
    }

    /// <summary>Freed blocks queued for clearing (some may have been handed out again since).</summary>
    public int SweepBacklog => _sweep.Count;

    /// <summary>
    /// Drops the prefix cache's blocks of <paramref name="tenant"/> (all of them when null): no later request
    /// finds them, and those no sequence holds are queued for clearing. Returns how many were dropped.
    /// </summary>
    public int FlushPrefixCache(string? tenant)
    {
        var blocks = _prefix.BlocksOf(tenant);
        foreach (var block in blocks)
        {
            _prefix.Evict(block);
            if (_pool.IsFree(block)) _sweep.Enqueue(block);
        }
        return blocks.Count;
    }

    public int BlockSize { get; }

    /// <summary>The sliding window every layer of the model attends through; 0 when some layer sees the whole context.</summary>
    public int Window { get; }

    /// <summary>A block-table entry whose block was released because no later query of the sequence reads it.</summary>
    public const int ReleasedBlock = -1;

    public bool PrefixCaching { get; }

    public int Capacity => _pool.Capacity;

    public int FreeBlocks => _pool.FreeCount;

    public int UsedBlocks => _pool.UsedCount;

    /// <summary>Blocks handed out at least once (see <see cref="BlockPool.TouchedCount"/>).</summary>
    public int TouchedBlocks => _pool.TouchedCount;

    public int CachedBlocks => _prefix.Count;

    /// <summary>Tokens looked up in the prefix cache (whole blocks only).</summary>
    public long PrefixQueryTokens { get; private set; }

    public long PrefixHitTokens { get; private set; }

    internal BlockPool Pool => _pool;

    public int BlocksFor(int tokens) => (tokens + BlockSize - 1) / BlockSize;

    /// <summary>
    /// Attaches the cached blocks that hold this fresh sequence's leading full blocks and marks
    /// their tokens computed. The last token is never taken from the cache: its logits are needed.
    /// </summary>
    public void AttachCachedPrefix(Sequence seq)
    {
        Debug.Assert(seq.Blocks.Count == 0 && seq.ComputedCount == 0);
        if (!PrefixCaching)
            return;
        var tokens = seq.Tokens;
        var fullBlocks = (tokens.Length - 1) / BlockSize;
        PrefixQueryTokens += (long)fullBlocks * BlockSize;
        var hash = seq.CacheRoot;
        for (var i = 0; i < fullBlocks; i++)
        {
            var blockTokens = tokens.Slice(i * BlockSize, BlockSize);
            var next = BlockHash.Chain(hash, blockTokens);
            if (!_prefix.TryGet(next, blockTokens, out var block))
                break;
            _pool.AddRef(block);
            seq.Blocks.Add(block);
            hash = next;
        }
        seq.HashedBlocks = seq.Blocks.Count;
        seq.ChainHash = hash;
        seq.ComputedCount = seq.Blocks.Count * BlockSize;
        PrefixHitTokens += seq.ComputedCount;
    }

    /// <summary>Blocks needed (new and copy-on-write) so that KV can be written up to <paramref name="tokenCount"/>.</summary>
    public int BlocksNeeded(Sequence seq, int tokenCount)
    {
        var needed = Math.Max(0, BlocksFor(tokenCount) - seq.Blocks.Count);
        if (NeedsCopyOnWrite(seq, tokenCount))
            needed++;
        return needed;
    }

    /// <summary>Makes room to write KV for positions [ComputedCount, tokenCount); false when the pool is short.</summary>
    public bool TryReserve(Sequence seq, int tokenCount, List<BlockCopy> copies)
    {
        if (BlocksNeeded(seq, tokenCount) > _pool.FreeCount)
            return false;
        if (NeedsCopyOnWrite(seq, tokenCount))
        {
            var index = seq.ComputedCount / BlockSize;
            var shared = seq.Blocks[index];
            var copy = Take();
            copies.Add(new BlockCopy(shared, copy, seq.ComputedCount - index * BlockSize));
            seq.Blocks[index] = copy;
            _pool.Release(shared);
        }
        while (seq.Blocks.Count < BlocksFor(tokenCount))
            seq.Blocks.Add(Take());
        return true;
    }

    /// <summary>After a step computed KV up to seq.ComputedCount: publish the blocks that became full.</summary>
    public void PublishFullBlocks(Sequence seq)
    {
        var full = seq.ComputedCount / BlockSize;
        var tokens = seq.Tokens;
        var hash = seq.ChainHash;
        for (var i = seq.HashedBlocks; i < full; i++)
        {
            var blockTokens = tokens.Slice(i * BlockSize, BlockSize);
            hash = BlockHash.Chain(hash, blockTokens);
            if (PrefixCaching && seq.Blocks[i] != ReleasedBlock)
                _prefix.Publish(seq.Blocks[i], hash, blockTokens, seq.Tenant);
        }
        seq.ChainHash = hash;
        seq.HashedBlocks = Math.Max(seq.HashedBlocks, full);
    }

    /// <summary>
    /// Rolls back blocks reserved past what <paramref name="tokenCount"/> tokens need (rejected draft tokens'
    /// KV). They were taken fresh for this step and never published, so no cache holds them.
    /// </summary>
    public void ReleaseBeyond(Sequence seq, int tokenCount)
    {
        var keep = BlocksFor(tokenCount);
        while (seq.Blocks.Count > keep)
        {
            var block = seq.Blocks[seq.Blocks.Count - 1];
            seq.Blocks.RemoveLast();
            Debug.Assert(!_prefix.IsCached(block));
            _pool.Release(block);
            if (_pool.IsFree(block)) _sweep.Enqueue(block);
        }
    }

    /// <summary>The child shares every block of the parent; writes into a shared partial block copy it first.</summary>
    public void Fork(Sequence parent, Sequence child)
    {
        Debug.Assert(child.Blocks.Count == 0);
        foreach (var block in parent.Blocks.AsSpan())
        {
            if (block != ReleasedBlock) _pool.AddRef(block);
            child.Blocks.Add(block);
        }
    }

    /// <summary>Drops all of the sequence's blocks; cached ones stay findable until evicted.</summary>
    public void Free(Sequence seq)
    {
        // Release the tail first so the prefix's head blocks are the last to be evicted.
        for (var i = seq.Blocks.Count - 1; i >= 0; i--)
        {
            var block = seq.Blocks[i];
            if (block == ReleasedBlock) continue;
            _pool.Release(block);
            if (_pool.IsFree(block) && !_prefix.IsCached(block)) _sweep.Enqueue(block);
        }
        seq.Blocks.Clear();
        seq.SetDraftCount(0);
        seq.ComputedCount = 0;
        seq.HashedBlocks = 0;
        seq.ChainHash = seq.CacheRoot;
    }

    /// <summary>
    /// With a model whose every layer is windowed (Mistral v0.1 style), releases the blocks wholly before the window of
    /// the sequence's next position, ComputedCount: no later query of it reads them. Their table entries become
    /// <see cref="ReleasedBlock"/> so positions keep their blocks' indices. Call after <see cref="PublishFullBlocks"/>:
    /// a released block that was published stays in the prefix cache with its KV intact until evicted, and a later
    /// sequence with the same prefix may attach it — its KV is that prefix's, whoever computed it; a block evicted
    /// (handed out again) is no longer found, and the chain of cached blocks a sequence attaches stops there.
    /// With a global layer anywhere (Gemma's interleaved layers) every position stays readable: nothing is released.
    /// </summary>
    public void ReleaseOutsideWindow(Sequence seq)
    {
        if (Window == 0)
            return;
        // The next query (position ComputedCount) sees positions from ComputedCount − Window + 1 on.
        var dead = Math.Max(0, seq.ComputedCount - Window + 1) / BlockSize;
        for (var i = Math.Min(dead, seq.Blocks.Count) - 1; i >= 0 && seq.Blocks[i] != ReleasedBlock; i--)
        {
            var block = seq.Blocks[i];
            seq.Blocks[i] = ReleasedBlock;
            _pool.Release(block);
            if (_pool.IsFree(block) && !_prefix.IsCached(block)) _sweep.Enqueue(block);
        }
    }

    private bool NeedsCopyOnWrite(Sequence seq, int tokenCount)
    {
        var index = seq.ComputedCount / BlockSize;
        return tokenCount > seq.ComputedCount
            && index < seq.Blocks.Count
            && _pool.RefCount(seq.Blocks[index]) > 1;
    }

    private int Take()
    {
        var block = _pool.Allocate();
        _prefix.Evict(block);
        // Someone's KV (a cached prefix evicted now, or a freed block not swept yet): cleared before this step writes.
        if (_dirty[block]) _scrubNow.Add(block);
        _dirty[block] = true;
        return block;
    }
}
