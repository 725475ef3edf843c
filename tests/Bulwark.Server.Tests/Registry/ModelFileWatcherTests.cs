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
        var bytes = File.ReadAllBytes(file);
        bytes[10] ^= 1;
        File.WriteAllBytes(file, bytes);

        // The notification normally fires; an explicit check covers file systems that drop it.
        var explicitCheck = await watcher.CheckNowAsync();
        var report = await raised.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.False(explicitCheck.Ok);
        Assert.Contains(report.Problems, p => p.Contains("content changed", StringComparison.Ordinal));
        await watcher.CheckNowAsync();
        Assert.Equal(1, Volatile.Read(ref count));
    }
}
