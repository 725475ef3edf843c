using System.Runtime.CompilerServices;
using Bulwark.Server.Audit;
using Bulwark.Server.Observability;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Bulwark.Server.Tests.Security;
using Bulwark.Server.Tests.Storage;
using Bulwark.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Bulwark.Server.Tests.Audit;

/// <summary>
/// The spool on its own (torn lines, its limit) and with the writer over a SQLite store made to
/// refuse by renaming its table away: records go to the spool, are replayed when the store takes
/// them again or at the next start, and are stored once however often they are replayed.
/// </summary>
public class AuditSpoolTests
{
    private static readonly DateTimeOffset Start = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    private static AuditRecord Request(int n, string key = "k1") => new()
    {
        At = Start, Kind = AuditRecord.RequestKind, RequestId = "r" + n, KeyId = key, Tenant = "t", Status = 200, PromptTokens = 3, CompletionTokens = 2,
    };

    private static List<AuditRecord> ReadAll(AuditSpool spool, out long damaged)
    {
        var box = new StrongBox<long>();
        var all = spool.Read(7, box).SelectMany(b => b).ToList();
        damaged = box.Value;
        return all;
    }

    [Fact]
    public void ALineTornByACrashIsCutOffAndTheNextBatchStartsOnALineOfItsOwn()
    {
        var path = Path.Combine(Fixtures.NewTempDirectory(), AuditSpool.FileName);
        using (var spool = new AuditSpool(path, 1 << 20)) Assert.Equal(3, spool.Append([Request(1), Request(2), Request(3)]));
        File.AppendAllText(path, "0badc0de {\"At\":\"2026-03-01T12:00:00+00:00\",\"Ki"); // the crash came mid-line

        using var reopened = new AuditSpool(path, 1 << 20);
        Assert.Equal(3, ReadAll(reopened, out _).Count);
        Assert.Equal(2, reopened.Append([Request(4), Request(5)]));
        var records = ReadAll(reopened, out var damaged);
        Assert.Equal(["r1", "r2", "r3", "r4", "r5"], records.Select(r => r.RequestId));
        Assert.Equal(0, damaged);
    }

    [Fact]
    public void ALineWhoseBytesChangedFailsItsChecksumAndIsSkippedAndCounted()
    {
        var path = Path.Combine(Fixtures.NewTempDirectory(), AuditSpool.FileName);
        using (var spool = new AuditSpool(path, 1 << 20)) spool.Append([Request(1), Request(2), Request(3)]);
        var lines = File.ReadAllLines(path);
        lines[1] = lines[1].Replace("\"r2\"", "\"r9\"", StringComparison.Ordinal);
        File.WriteAllText(path, string.Join('\n', lines) + "\n");

        using var reopened = new AuditSpool(path, 1 << 20);
        Assert.Equal(["r1", "r3"], ReadAll(reopened, out var damaged).Select(r => r.RequestId));
        Assert.Equal(1, damaged);
    }

    [Fact]
    public void TheSpoolKeepsWhatFitsUnderItsLimitAndNoMore()
    {
        var path = Path.Combine(Fixtures.NewTempDirectory(), AuditSpool.FileName);
        using var spool = new AuditSpool(path, 1000);
        var kept = spool.Append([.. Enumerable.Range(0, 20).Select(i => Request(i))]);
        Assert.InRange(kept, 1, 19);
        Assert.True(spool.Length <= 1000);
        Assert.Equal(0, spool.Append([Request(99)]));
        Assert.Equal(kept, ReadAll(spool, out _).Count);
    }

    [Theory]
    [InlineData(TestDatabases.Sqlite)]
    [InlineData(TestDatabases.Postgres)]
    public async Task RecordsWrittenAgainAreStoredAndCountedOnce(string kind)
    {
        var (storage, _) = await TestDatabases.OpenAsync(kind);
        await using var _s = storage;
        List<AuditRecord> batch = [Request(1), Request(2), Request(3)];
        Assert.Equal(3, await storage.Audit.WriteAsync(batch));
        // A replay after a crash between the store's commit and the spool's truncation sends them again.
        Assert.Equal(1, await storage.Audit.WriteAsync([.. batch, Request(4)]));
        Assert.Equal(4, (await storage.Audit.ReadRecentAsync(10)).Count);
        Assert.Equal(4, (await storage.Audit.UsageAsync("k1", "2026-03-01"))!.Requests);
    }

    [Fact]
    public async Task ARefusedBatchIsSpooledAndWrittenOnceTheStoreTakesRecordsAgain()
    {
        var (storage, data) = await TestDatabases.OpenAsync(TestDatabases.Sqlite);
        await using var _s = storage;
        using var metrics = new ServerMetrics(() => default, () => (0, 0));
        var writer = Writer(storage, data, metrics, new AuditOptions { FlushInterval = TimeSpan.Zero });
        await writer.StartAsync(CancellationToken.None);
        try
        {
            await RefuseAsync(storage, true);
            for (var i = 0; i < 10; i++) writer.Enqueue(Request(i));
            await writer.FlushAsync();
            Assert.True(writer.Spooled > 0);
            Assert.Equal(writer.Spooled, metrics.AuditSpoolBytes);

            await RefuseAsync(storage, false);
            // No new record comes: the writer offers the spool to the store by itself.
            Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(20), async () => writer.Spooled == 0));
            Assert.Equal(Enumerable.Range(0, 10).Select(i => "r" + i).Order(), (await storage.Audit.ReadRecentAsync(100)).Select(r => r.RequestId!).Order());
            Assert.Equal(0, writer.Dropped);
        }
        finally { await writer.StopAsync(CancellationToken.None); writer.Dispose(); }
    }

    [Fact]
    public async Task WhatAnEarlierRunSpooledIsWrittenAtStartUp()
    {
        var (storage, data) = await TestDatabases.OpenAsync(TestDatabases.Sqlite);
        await using var _s = storage;
        using (var spool = new AuditSpool(Path.Combine(data.StatePath, AuditSpool.FileName), 1 << 20))
            spool.Append([Request(1), Request(2)]);
        // The earlier run may have written one of them before it died.
        await storage.Audit.WriteAsync([ReadSpooled(data)[0]]);

        using var metrics = new ServerMetrics(() => default, () => (0, 0));
        var writer = Writer(storage, data, metrics, new AuditOptions());
        await writer.StartAsync(CancellationToken.None);
        try
        {
            Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(20), async () => writer.Spooled == 0));
            Assert.Equal(["r1", "r2"], (await storage.Audit.ReadRecentAsync(10)).Select(r => r.RequestId!).Order());
        }
        finally { await writer.StopAsync(CancellationToken.None); writer.Dispose(); }
    }

    [Fact]
    public async Task RecordsBeyondTheSpoolLimitAreDroppedCountedAndLogged()
    {
        var (storage, data) = await TestDatabases.OpenAsync(TestDatabases.Sqlite);
        await using var _s = storage;
        using var metrics = new ServerMetrics(() => default, () => (0, 0));
        var logs = new LogCapture();
        var writer = new AuditWriter(storage, new KeyCache(storage.Keys, TimeProvider.System, TimeSpan.FromSeconds(30)),
            new AuditOptions { FlushInterval = TimeSpan.Zero, SpoolLimitBytes = 2000 }, TimeProvider.System, new Microsoft.Extensions.Logging.Logger<AuditWriter>(
                new Microsoft.Extensions.Logging.LoggerFactory([logs])), metrics, data);
        await writer.StartAsync(CancellationToken.None);
        try
        {
            await RefuseAsync(storage, true);
            for (var i = 0; i < 50; i++) writer.Enqueue(Request(i));
            await writer.FlushAsync();
            Assert.InRange(writer.Dropped, 1, 49);
            Assert.True(writer.Spooled <= 2000);
            Assert.Contains(logs.Lines, l => l.Contains("reached its limit of 2000 bytes", StringComparison.Ordinal));
        }
        finally { await writer.StopAsync(CancellationToken.None); writer.Dispose(); }
    }

    private static AuditWriter Writer(SecurityStorage storage, DataDirectory data, ServerMetrics metrics, AuditOptions options) =>
        new(storage, new KeyCache(storage.Keys, TimeProvider.System, TimeSpan.FromSeconds(30)), options, TimeProvider.System,
            NullLogger<AuditWriter>.Instance, metrics, data);

    private static List<AuditRecord> ReadSpooled(DataDirectory data)
    {
        using var spool = new AuditSpool(Path.Combine(data.StatePath, AuditSpool.FileName), 1 << 20);
        return ReadAll(spool, out _);
    }

    /// <summary>Makes the store refuse every audit write (its table renamed away), or take them again.</summary>
    private static async Task RefuseAsync(SecurityStorage storage, bool refuse)
    {
        await using var connection = await storage.Database.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = refuse ? "ALTER TABLE audit_events RENAME TO audit_events_away" : "ALTER TABLE audit_events_away RENAME TO audit_events";
        await command.ExecuteNonQueryAsync();
    }
}
