using Bulwark.Server.Audit;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Bulwark.Server.Tests.Security;
using Bulwark.Server.Tests.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Bulwark.Server.Tests.Audit;

public class AuditWriterTests
{
    private static readonly DateTimeOffset Start = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    private static AuditRecord Request(string id, string? key = "k1", string? reason = null) => new()
    {
        At = Start, Kind = AuditRecord.RequestKind, RequestId = id, KeyId = key, Tenant = "t", Status = reason is null ? 200 : 429,
        PromptTokens = 3, CompletionTokens = 2, Reason = reason,
    };

    private static AuditWriter Writer(SecurityStorage storage, AuditOptions options, TimeProvider time, KeyCache? keys = null) =>
        new(storage, keys ?? new KeyCache(storage.Keys, time, TimeSpan.FromSeconds(30)), options, time, NullLogger<AuditWriter>.Instance);

    /// <summary>A started writer, stopped on dispose.</summary>
    private sealed class Running(AuditWriter writer) : IAsyncDisposable
    {
        public static async Task<Running> StartAsync(AuditWriter writer)
        {
            await writer.StartAsync(CancellationToken.None);
            return new Running(writer);
        }

        public async ValueTask DisposeAsync() => await writer.StopAsync(CancellationToken.None);
    }

    [Fact]
    public async Task RecordsWaitOutTheFlushIntervalBeforeTheyAreWritten()
    {
        var (storage, _) = await TestDatabases.OpenAsync(TestDatabases.Sqlite);
        await using var _s = storage;
        var time = new FakeTimeProvider(Start);
        var writer = Writer(storage, new AuditOptions { FlushInterval = TimeSpan.FromSeconds(1) }, time);
        await using var running = await Running.StartAsync(writer);
        writer.Enqueue(Request("r1"));
        writer.Enqueue(Request("r2"));
        // The writer's clock stands still: whatever the scheduling, nothing may be written yet.
        await Task.Delay(100);
        Assert.Empty(await storage.Audit.ReadRecentAsync(10));

        // Moving the clock a little less than the interval releases nothing; the full interval releases both.
        time.Advance(TimeSpan.FromMilliseconds(999));
        await Task.Delay(50);
        Assert.Empty(await storage.Audit.ReadRecentAsync(10));
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(10), async () =>
        {
            time.Advance(TimeSpan.FromMilliseconds(100));
            return (await storage.Audit.ReadRecentAsync(10)).Count == 2;
        }));
    }

    [Fact]
    public async Task FlushWritesAtOnceWithoutWaitingOutTheInterval()
    {
        var (storage, _) = await TestDatabases.OpenAsync(TestDatabases.Sqlite);
        await using var _s = storage;
        // A clock that never moves: the flush interval can only end through FlushAsync.
        var writer = Writer(storage, new AuditOptions { FlushInterval = AuditOptions.MaxFlushInterval }, new FakeTimeProvider(Start));
        await using var running = await Running.StartAsync(writer);
        for (var i = 0; i < 3; i++)
        {
            writer.Enqueue(Request("r" + i));
            await writer.FlushAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(i + 1, (await storage.Audit.ReadRecentAsync(10)).Count);
        }
    }

    [Fact]
    public async Task StoppingWritesWhatIsQueued()
    {
        var (storage, _) = await TestDatabases.OpenAsync(TestDatabases.Sqlite);
        await using var _s = storage;
        var writer = Writer(storage, new AuditOptions { FlushInterval = AuditOptions.MaxFlushInterval }, new FakeTimeProvider(Start));
        await writer.StartAsync(CancellationToken.None);
        writer.Enqueue(Request("r1"));
        await writer.StopAsync(CancellationToken.None);
        Assert.Equal("r1", Assert.Single(await storage.Audit.ReadRecentAsync(10)).RequestId);
    }

    [Fact]
    public async Task AFullQueueDropsAndCountsNewRecordsAndFlushStillEnds()
    {
        var (storage, _) = await TestDatabases.OpenAsync(TestDatabases.Sqlite);
        await using var _s = storage;
        var writer = Writer(storage, new AuditOptions { QueueCapacity = 2, FlushInterval = TimeSpan.Zero }, TimeProvider.System);
        // Not started yet: the queue fills. Two fit, three are dropped.
        for (var i = 0; i < 5; i++) writer.Enqueue(Request("r" + i));
        Assert.Equal(3, writer.Dropped);

        await using var running = await Running.StartAsync(writer);
        await writer.FlushAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(["r1", "r0"], (await storage.Audit.ReadRecentAsync(10)).Select(r => r.RequestId));
        Assert.Equal(3, writer.Dropped);
    }

    [Fact]
    public async Task KeysLastUsedTimesAreWrittenWithTheRecords()
    {
        var (storage, _) = await TestDatabases.OpenAsync(TestDatabases.Sqlite);
        await using var _s = storage;
        await storage.Keys.InsertAsync(new ApiKeyRecord("k1", "h", false, "t", "n", [], KeyLimits.None, 0, null, false, Start, null, null));
        var keys = new KeyCache(storage.Keys, TimeProvider.System, TimeSpan.FromSeconds(30));
        var writer = Writer(storage, new AuditOptions { FlushInterval = TimeSpan.Zero }, TimeProvider.System, keys);
        await using var running = await Running.StartAsync(writer);
        keys.MarkUsed("k1", Start.AddMinutes(5));
        writer.Enqueue(Request("r1"));
        await writer.FlushAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(Start.AddMinutes(5), (await storage.Keys.FindAsync("k1"))!.LastUsedAt);
    }

    [Theory]
    [InlineData(-1, false)]
    [InlineData(0, true)]
    [InlineData(10_000, true)]
    [InlineData(10_001, false)]
    public void FlushIntervalIsBetweenZeroAndTenSeconds(int milliseconds, bool valid)
    {
        var problems = new AuditOptions { FlushInterval = TimeSpan.FromMilliseconds(milliseconds) }.Validate();
        if (valid) Assert.Empty(problems);
        else Assert.Contains("Bulwark:Audit:FlushInterval must be between 00:00:00 and 00:00:10; got ", Assert.Single(problems));
    }

    [Theory]
    [InlineData(0, 1, "Bulwark:Audit:QueueCapacity must be at least 1; got 0")]
    [InlineData(1, 0, "Bulwark:Audit:BatchSize must be at least 1; got 0")]
    public void QueueCapacityAndBatchSizeAreAtLeastOne(int capacity, int batch, string problem)
    {
        Assert.Equal([problem], new AuditOptions { QueueCapacity = capacity, BatchSize = batch }.Validate());
        Assert.Empty(new AuditOptions { QueueCapacity = 1, BatchSize = 1 }.Validate());
    }
}
