using System.Net;
using Bulwark.Engine.Synthesis;
using Bulwark.Server.Audit;
using Bulwark.Server.Models;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Bulwark.Server.Tests.Replicas;
using Bulwark.Server.Tests.Security;

namespace Bulwark.Server.Tests.Faults;

/// <summary>
/// The data directory on a small file system of its own, filled to the last byte: start-up stops with
/// the path and the cause; a running server keeps serving while audit records that neither the
/// store nor the spool can take are dropped and counted; and nothing is corrupt once space returns.
/// </summary>
public sealed class DiskFullTests
{
    [Fact]
    public async Task StartingOnAFullDiskStopsWithThePathAndTheCauseAndNoStackTrace()
    {
        using var disk = SmallDisk.Mount("1m");
        disk.Fill();
        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => TestServe.StartAsync(new Dictionary<string, string>(), disk.Path));
        // The demo model is the first thing serve writes.
        Assert.Contains($"Bulwark cannot write its data directory: {Path.Combine(disk.Path, "models")}", failure.Message, StringComparison.Ordinal);
        Assert.Contains("No space left on device", failure.Message, StringComparison.Ordinal);
        Assert.Contains("bytes free on its file system", failure.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StartingWithNoRoomForTheKeyStoreNamesTheDatabaseFile()
    {
        using var disk = SmallDisk.Mount("8m");
        var data = DataDirectory.Resolve(disk.Path).EnsureCreated();
        SyntheticModel.WriteDemoGgufIfMissing(Path.Combine(data.ModelsPath, ModelSource.DemoFileName));
        disk.Fill();
        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => TestServe.StartAsync(
            new Dictionary<string, string> { ["Bulwark__Security__HmacSecret"] = Convert.ToBase64String(new byte[32].Select((_, i) => (byte)i).ToArray()) },
            disk.Path));
        Assert.Contains($"Bulwark cannot write its data directory: {Path.Combine(data.StatePath, SecurityStorage.SqliteFileName)}", failure.Message, StringComparison.Ordinal);
        Assert.Contains("disk is full", failure.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WhileTheDiskIsFullRequestsAreServedLostAuditRecordsAreCountedAndNothingIsCorruptAfter()
    {
        using var disk = SmallDisk.Mount("4m");
        await using var app = await SecuredApp.StartAsync(disk.Path, new Dictionary<string, string?> { ["Bulwark:Audit:FlushInterval"] = "00:00:00.020" });
        var key = await app.CreateKeyAsync(new KeySpec { Name = "full" });
        using var client = app.Client(key.Key);
        var writer = app.Get<AuditWriter>();
        var audit = app.Get<SecurityStorage>().Audit;
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", SecuredApp.Chat("m1"))).StatusCode);
        await writer.FlushAsync();
        Assert.Single(await RecordsAsync(audit, key));

        disk.Fill();
        const int during = 20;
        for (var i = 0; i < during; i++)
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", SecuredApp.Chat("m1"))).StatusCode);
        await writer.FlushAsync();
        // Every record is either stored or counted as dropped: none vanishes unnoticed.
        var storedDuring = (await RecordsAsync(audit, key)).Count - 1;
        Assert.Equal(during, storedDuring + writer.Dropped);
        Assert.True(writer.Dropped > 0, "the full disk took every record");
        var spool = Path.Combine(app.Get<DataDirectory>().StatePath, AuditSpool.FileName);
        Assert.Contains(app.Logs.Lines, l => l.Contains($"the spool {spool} could not be written either", StringComparison.Ordinal)
                                             && l.Contains("No space left on device", StringComparison.Ordinal));

        disk.Free();
        for (var i = 0; i < 5; i++)
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", SecuredApp.Chat("m1"))).StatusCode);
        await writer.FlushAsync();
        Assert.Equal(1 + storedDuring + 5, (await RecordsAsync(audit, key)).Count);
        Assert.Equal("ok", await SqliteFile.IntegrityCheckAsync(Path.Combine(app.Get<DataDirectory>().StatePath, SecurityStorage.SqliteFileName)));
        Assert.True(!File.Exists(spool) || new FileInfo(spool).Length == 0, "a failed spool write left bytes behind");
    }

    private static async Task<List<AuditRecord>> RecordsAsync(AuditStore audit, IssuedKey key) =>
        [.. (await audit.ReadRecentAsync(1000, AuditRecord.RequestKind)).Where(r => r.KeyId == key.Record.Id)];
}
