using System.Diagnostics;

namespace Bulwark.Engine.KvCache;

/// <summary>
/// A fixed pool of KV blocks with reference counts. Unreferenced blocks sit on a free list in
/// the order they were released, so the block handed out next is the least recently used one;
/// a block still holding a cached prefix therefore survives as long as possible (LRU eviction).
/// </summary>
internal sealed class BlockPool
{
    private const int None = -1;
    private readonly int[] _refCount;
    // Doubly linked free list over block ids: O(1) removal when a prefix hit revives a free block.
    private readonly int[] _prev;
    private readonly int[] _next;
    private readonly bool[] _isFree;
    private readonly bool[] _touched;
    private int _head = None;
    private int _tail = None;

    public BlockPool(int capacity)
    {
        if (capacity < 1)
            throw new ArgumentOutOfRangeException(nameof(capacity), $"the KV cache needs at least 1 block; got {capacity}");
        Capacity = capacity;
        _refCount = new int[capacity];
        _prev = new int[capacity];
        _next = new int[capacity];
        _isFree = new bool[capacity];
        _touched = new bool[capacity];
        for (var b = 0; b < capacity; b++)
            PushTail(b);
    }

    public int Capacity { get; }

    /// <summary>Blocks with no reference (some may still hold a cached prefix and are evictable).</summary>
    public int FreeCount { get; private set; }

    public int UsedCount => Capacity - FreeCount;

    /// <summary>
    /// Blocks handed out at least once since the pool was made: their memory has been written, so it is
    /// resident (KV pages are anonymous memory, resident from their first write). Once this reaches
    /// <see cref="Capacity"/> the KV cache adds nothing more to the process's memory.
    /// </summary>
    public int TouchedCount { get; private set; }

    public int RefCount(int block) => _refCount[block];

    public bool IsFree(int block) => _isFree[block];

    /// <summary>Takes the least recently released block; the caller must forget any prefix it cached.</summary>
    public int Allocate()
    {
        if (_head == None)
            throw new InvalidOperationException("the KV block pool is exhausted; the scheduler must check FreeCount first");
        var block = _head;
        Unlink(block);
        _refCount[block] = 1;
        if (!_touched[block])
        {
            _touched[block] = true;
            TouchedCount++;
        }
        return block;
    }

    /// <summary>Adds a reference; revives the block from the free list when it had none (prefix hit).</summary>
    public void AddRef(int block)
    {
        if (_refCount[block] == 0)
            Unlink(block);
        _refCount[block]++;
    }

    public void Release(int block)
    {
        if (_refCount[block] <= 0)
            throw new InvalidOperationException($"KV block {block} released with reference count {_refCount[block]}");
        if (--_refCount[block] == 0)
            PushTail(block);
    }

    private void PushTail(int block)
    {
        Debug.Assert(!_isFree[block]);
        _isFree[block] = true;
        _prev[block] = _tail;
        _next[block] = None;
        if (_tail == None) _head = block; else _next[_tail] = block;
        _tail = block;
        FreeCount++;
    }

    private void Unlink(int block)
    {
        Debug.Assert(_isFree[block]);
        _isFree[block] = false;
        var p = _prev[block];
        var n = _next[block];
        if (p == None) _head = n; else _next[p] = n;
        if (n == None) _tail = p; else _prev[n] = p;
        FreeCount--;
    }
}
