using Bulwark.Server.Security;
using Bulwark.Server.Tests.Storage;

namespace Bulwark.Server.Tests.Security;

public class KeyCacheLastUsedTests
{
    private static readonly DateTimeOffset T0 = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task EachKeysLatestUseIsTakenOnce()
    {
        var (storage, _) = await TestDatabases.OpenAsync(TestDatabases.Sqlite);
        await using (storage)
        {
            var cache = new KeyCache(storage.Keys, TimeProvider.System, TimeSpan.FromSeconds(30));
            Assert.Empty(cache.TakeLastUsed());
            cache.MarkUsed("a", T0.AddSeconds(2));
            cache.MarkUsed("a", T0.AddSeconds(1)); // a request that started earlier finishing later
            cache.MarkUsed("b", T0);
            Assert.Equal(new Dictionary<string, DateTimeOffset> { ["a"] = T0.AddSeconds(2), ["b"] = T0 }, cache.TakeLastUsed().ToDictionary());
            Assert.Empty(cache.TakeLastUsed());
            cache.MarkUsed("b", T0.AddSeconds(3));
            Assert.Equal([new KeyValuePair<string, DateTimeOffset>("b", T0.AddSeconds(3))], cache.TakeLastUsed());
        }
    }

    [Fact]
    public async Task UsesNotedWhileTakingAreKeptForTheNextTake()
    {
        var (storage, _) = await TestDatabases.OpenAsync(TestDatabases.Sqlite);
        await using (storage)
        {
            var cache = new KeyCache(storage.Keys, TimeProvider.System, TimeSpan.FromSeconds(30));
            const int Uses = 20_000;
            var taken = new List<DateTimeOffset>();
            var marker = Task.Run(() =>
            {
                for (var i = 1; i <= Uses; i++) cache.MarkUsed("k", T0.AddTicks(i));
            });
            while (!marker.IsCompleted) taken.AddRange(cache.TakeLastUsed().Select(p => p.Value));
            await marker;
            taken.AddRange(cache.TakeLastUsed().Select(p => p.Value));
            // The last use is never lost, and what is taken only moves forward.
            Assert.Equal(T0.AddTicks(Uses), taken[^1]);
            Assert.Equal(taken.Order(), taken);
        }
    }
}
