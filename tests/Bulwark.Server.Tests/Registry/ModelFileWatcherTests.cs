using Bulwark.Server.Registry;

namespace Bulwark.Server.Tests.Registry;

public class ModelFileWatcherTests
{
    [Fact]
    public async Task ChangedServingFileRaisesTamperDetectedOnce()
    {
        var bed = new RegistryTestBed(nameof(ChangedServingFileRaisesTamperDetectedOnce));
        var m = await bed.Registry.AddAsync("m", bed.MakeFile("w.gguf", 50_000), new AddOptions());
        var raised = new TaskCompletionSource<VerificationReport>(TaskCreationOptions.RunContinuationsAsynchronously);
        var count = 0;
        await using var watcher = new ModelFileWatcher(bed.Registry, "m", m.Version, false, TimeSpan.FromHours(1), TimeProvider.System);
        watcher.TamperDetected += r => { Interlocked.Increment(ref count); raised.TrySetResult(r); };
        Assert.True((await watcher.CheckNowAsync()).Ok);

        var file = Path.Combine(bed.Registry.FilesFolder("m", m.Version), "w.gguf");
        // Flip one byte in place: rewriting the whole file would briefly show it truncated to 0
        // bytes, and the notification could report that size change first.
        using (var stream = new FileStream(file, FileMode.Open, FileAccess.ReadWrite))
        {
            stream.Position = 10;
            var b = stream.ReadByte();
            stream.Position = 10;
            stream.WriteByte((byte)(b ^ 1));
        }

        // The notification normally fires; an explicit check covers file systems that drop it.
        var explicitCheck = await watcher.CheckNowAsync();
        var report = await raised.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.False(explicitCheck.Ok);
        Assert.Contains(report.Problems, p => p.Contains("content changed", StringComparison.Ordinal));
        await watcher.CheckNowAsync();
        Assert.Equal(1, Volatile.Read(ref count));
    }
}
