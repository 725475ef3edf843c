using Bulwark.Server.Storage;

namespace Bulwark.Server.Tests.Storage;

public class ReplicaRequestStoreTests
{
    private static readonly DateTimeOffset Now = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData(TestDatabases.Sqlite)]
    [InlineData(TestDatabases.Postgres)]
    public async Task EachReplicaKeepsOneRowAndOnlyFreshOnesAreRead(string kind)
    {
        var (storage, _) = await TestDatabases.OpenAsync(kind);
        await using (storage)
        {
            var store = storage.ReplicaRequests;
            await store.PublishAsync(new ReplicaSnapshot("a", Now.AddSeconds(-10), "[1]"));
            await store.PublishAsync(new ReplicaSnapshot("a", Now, "[2]")); // replaces a's row
            await store.PublishAsync(new ReplicaSnapshot("b", Now.AddSeconds(-5), "[3]"));
            await store.PublishAsync(new ReplicaSnapshot("c", Now.AddMilliseconds(-5001), "[4]"));

            var fresh = await store.ReadSinceAsync(Now.AddSeconds(-5));
            Assert.Equal(["a:[2]", "b:[3]"], fresh.Select(s => $"{s.Replica}:{s.Requests}"));
            Assert.Equal(Now, fresh[0].At);

            Assert.Equal(1, await store.RemoveAsync("a", DateTimeOffset.MinValue));
            Assert.Equal(["b"], (await store.ReadSinceAsync(DateTimeOffset.MinValue)).Where(s => s.Replica != "c").Select(s => s.Replica));
            // Rows older than the cut-off go, whoever published them.
            Assert.Equal(1, await store.RemoveAsync(null, Now.AddSeconds(-5)));
            Assert.Equal(["b"], (await store.ReadSinceAsync(DateTimeOffset.MinValue)).Select(s => s.Replica));
        }
    }
}
