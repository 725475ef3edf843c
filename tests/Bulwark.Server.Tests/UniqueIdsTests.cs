using System.Collections.Concurrent;
namespace Bulwark.Server.Tests;

public class UniqueIdsTests
{
    [Fact]
    public async Task IdsAreDistinctAcrossThreadsAndShareOneRandomProcessPrefix()
    {
        var ids = new ConcurrentBag<string>();
        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
        {
            for (var i = 0; i < 5000; i++) ids.Add(UniqueIds.Next());
        })));
        Assert.Equal(20_000, ids.Distinct().Count());
        var prefixes = ids.Select(id => id.Split('-')[0]).Distinct().ToList();
        var prefix = Assert.Single(prefixes);
        Assert.Matches("^[0-9a-f]{16}$", prefix);
        Assert.All(ids, id => Assert.Matches("^[0-9a-f]{16}-[0-9a-f]{16}$", id));
    }
}
