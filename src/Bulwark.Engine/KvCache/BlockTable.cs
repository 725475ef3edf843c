namespace Bulwark.Engine.KvCache;

/// <summary>One sequence's KV blocks in position order: token at position p lives in block [p / blockSize].</summary>
internal sealed class BlockTable
{
    private int[] _blocks;

    public BlockTable(int initialCapacity = 8) => _blocks = new int[Math.Max(1, initialCapacity)];

    public int Count { get; private set; }

    public int this[int index]
    {
        get => _blocks[index];
        set => _blocks[index] = value;
    }

    public ReadOnlySpan<int> AsSpan() => _blocks.AsSpan(0, Count);

    public void Add(int block)
    {
        if (Count == _blocks.Length)
            Array.Resize(ref _blocks, _blocks.Length * 2);
        _blocks[Count++] = block;
    }

    public void RemoveLast() => Count--;

    public void Clear() => Count = 0;
}
