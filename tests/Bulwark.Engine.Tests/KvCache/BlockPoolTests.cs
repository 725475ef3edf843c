using Bulwark.Engine.KvCache;

namespace Bulwark.Engine.Tests.KvCache;

/// <summary><see cref="BlockPool.TouchedCount"/>: blocks handed out at least once, however often each is reused.</summary>
public sealed class BlockPoolTests
{
    [Fact]
    public void TouchedCountsEachBlockOnceAndReachesCapacityWhenEveryBlockWasHandedOut()
    {
        var pool = new BlockPool(4);
        Assert.Equal(0, pool.TouchedCount);
        var a = pool.Allocate();
        var b = pool.Allocate();
        Assert.Equal(2, pool.TouchedCount);
        pool.Release(a);
        pool.Release(b);
        // Least recently released first: the two untouched blocks come before a and b again.
        var c = pool.Allocate();
        var d = pool.Allocate();
        Assert.DoesNotContain(c, new[] { a, b });
        Assert.DoesNotContain(d, new[] { a, b });
        Assert.Equal(4, pool.TouchedCount);
        pool.Release(c);
        pool.Allocate();
        pool.AddRef(d);
        Assert.Equal(4, pool.TouchedCount); // reuse and revival touch nothing new
    }

    [Fact]
    public void TouchedEqualsTheDistinctBlocksEverAllocatedUnderRandomUse()
    {
        var random = new Random(5);
        var pool = new BlockPool(64);
        var held = new List<int>();
        var ever = new HashSet<int>();
        for (var i = 0; i < 2000; i++)
        {
            if (held.Count < pool.Capacity && (held.Count == 0 || random.Next(3) > 0))
            {
                var block = pool.Allocate();
                held.Add(block);
                ever.Add(block);
            }
            else
            {
                var at = random.Next(held.Count);
                pool.Release(held[at]);
                held.RemoveAt(at);
            }
            Assert.Equal(ever.Count, pool.TouchedCount);
        }
        Assert.Equal(pool.Capacity, pool.TouchedCount);
    }
}
