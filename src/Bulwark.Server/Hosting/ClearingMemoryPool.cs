using System.Buffers;
using System.Collections.Concurrent;
using Microsoft.AspNetCore.Connections;

namespace Bulwark.Server.Hosting;

/// <summary>
/// Kestrel's memory pool with one difference from the default: a block is cleared when it comes back,
/// so the request and response bytes a connection read and wrote (prompts, completions, keys in
/// headers) do not wait in the pool until another connection happens to overwrite them (issue 25).
/// Blocks are pinned 4 KiB arrays, the size Kestrel reads and writes in; at most
/// <see cref="MaxPooledBlocks"/> wait in the pool, the rest go to the GC.
/// </summary>
public sealed class ClearingMemoryPool(int maxPooledBlocks = ClearingMemoryPool.DefaultMaxPooledBlocks) : MemoryPool<byte>
{
    public const int BlockSize = 4096;

    /// <summary>64 MiB of idle blocks at most (Kestrel holds a few per connection while it reads or writes).</summary>
    public const int DefaultMaxPooledBlocks = 16384;

    public int MaxPooledBlocks { get; } = maxPooledBlocks > 0 ? maxPooledBlocks : throw new ArgumentOutOfRangeException(nameof(maxPooledBlocks));

    private readonly ConcurrentStack<Block> _free = new();
    private int _pooled;
    private volatile bool _disposed;

    public override int MaxBufferSize => BlockSize;

    /// <summary>A block of <see cref="BlockSize"/> bytes; <paramref name="minBufferSize"/> may not exceed it (Kestrel never asks for more).</summary>
    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, BlockSize);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_free.TryPop(out var block))
        {
            Interlocked.Decrement(ref _pooled);
            block.Lease();
            return block;
        }
        return new Block(this);
    }

    private void Return(Block block)
    {
        Returning?.Invoke(block.Array);
        block.Array.AsSpan().Clear();
        if (!_disposed && Interlocked.Increment(ref _pooled) <= MaxPooledBlocks) _free.Push(block);
        else if (!_disposed) Interlocked.Decrement(ref _pooled);
    }

    /// <summary>Test-only: sees each block just before it is cleared, to prove what passed through the pool.</summary>
    internal static Action<byte[]>? Returning;

    /// <summary>Test-only: the blocks waiting in the pool, to read after a request has ended.</summary>
    internal IEnumerable<byte[]> PooledBlocks() => _free.Select(b => b.Array);

    protected override void Dispose(bool disposing)
    {
        _disposed = true;
        _free.Clear();
    }

    private sealed class Block(ClearingMemoryPool pool) : IMemoryOwner<byte>
    {
        private int _leased = 1;

        public byte[] Array { get; } = GC.AllocateUninitializedArray<byte>(BlockSize, pinned: true);

        public Memory<byte> Memory
        {
            get
            {
                ObjectDisposedException.ThrowIf(Volatile.Read(ref _leased) == 0, this);
                return Array;
            }
        }

        public void Lease() => Volatile.Write(ref _leased, 1);

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _leased, 0) == 1) pool.Return(this);
        }
    }
}

/// <summary>Hands Kestrel (and anything else asking the container for a pool) a <see cref="ClearingMemoryPool"/>.</summary>
public sealed class ClearingMemoryPoolFactory : IMemoryPoolFactory<byte>
{
    private readonly ConcurrentBag<ClearingMemoryPool> _created = [];

    public MemoryPool<byte> Create(MemoryPoolOptions? options = null)
    {
        var pool = new ClearingMemoryPool();
        _created.Add(pool);
        return pool;
    }

    /// <summary>Test-only: every pool this factory made (Kestrel makes one per transport).</summary>
    internal IReadOnlyCollection<ClearingMemoryPool> Created => _created;
}
