using Bulwark.Server.Api;
using Bulwark.Server.Backends;
using Bulwark.Server.Observability;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Tests.Hosting;

/// <summary>
/// <see cref="ServedModels"/>' invariants under random operations and under threads racing a swap:
/// a model is disposed exactly once, only after it was retired and its last lease ended, and a
/// lease always hands out a model that is not disposed.
/// </summary>
public sealed class ServedModelsTests
{
    private sealed class Probe(string id) : IGenerationBackend, IDisposable
    {
        public int Users;
        public int Disposals;
        public bool DisposedWhileUsed;
        public ModelCard Model { get; } = new(id, 16, 257, DateTimeOffset.UnixEpoch);
        public PreparedPrompt Prepare(GenerationRequest request) => throw new NotSupportedException();
        public IAsyncEnumerable<ChoiceDelta> GenerateAsync(BackendCall call, CancellationToken cancellationToken) => throw new NotSupportedException();
        public BackendStatistics Statistics => new(Volatile.Read(ref Users), 0, 0, 10, 4, 1);

        public void Dispose()
        {
            if (Volatile.Read(ref Users) != 0) DisposedWhileUsed = true;
            Interlocked.Increment(ref Disposals);
        }
    }

    private static ServedModelInfo Info => new("test", null, 100, DateTimeOffset.UnixEpoch);

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void RandomOperationsKeepEveryInvariant(int seed)
    {
        var random = new Random(seed);
        var models = new ServedModels();
        var all = new List<Probe>();
        var leases = new List<(ModelLease Lease, Probe Probe)>();
        var ids = new[] { "a", "b", "c" };
        for (var step = 0; step < 2000; step++)
        {
            var id = ids[random.Next(ids.Length)];
            switch (random.Next(5))
            {
                case 0 when models.Find(id) is null:
                    var added = new Probe(id);
                    all.Add(added);
                    models.Add(added, Info);
                    break;
                case 1 when models.Find(id) is not null:
                    var replacement = new Probe(id);
                    all.Add(replacement);
                    models.Replace(replacement, Info);
                    break;
                case 2:
                    models.Remove(id);
                    break;
                case 3:
                    try
                    {
                        var lease = models.Acquire(id);
                        var probe = (Probe)lease.Backend;
                        Assert.Equal(0, probe.Disposals);
                        probe.Users++;
                        leases.Add((lease, probe));
                    }
                    catch (ApiException e)
                    {
                        Assert.Equal(404, e.Status);
                        Assert.Null(models.Find(id));
                    }
                    break;
                case 4 when leases.Count > 0:
                    var at = random.Next(leases.Count);
                    var (held, user) = leases[at];
                    leases.RemoveAt(at);
                    user.Users--;
                    held.Dispose();
                    held.Dispose(); // a second dispose releases nothing more
                    break;
            }
            var active = models.List().Select(m => m.Backend).ToHashSet();
            foreach (var p in all)
            {
                Assert.False(p.DisposedWhileUsed);
                Assert.InRange(p.Disposals, 0, 1);
                // Disposed exactly when it left the active set and nobody holds it.
                Assert.Equal(!active.Contains(p) && p.Users == 0, p.Disposals == 1);
            }
            Assert.Equal(active.Count + models.Retiring().Count, all.Count(p => p.Disposals == 0));
            Assert.Equal(100L * (active.Count + models.Retiring().Count), models.MemoryBytes);
        }
    }

    [Fact]
    public async Task RequestsRacingASwapNeverGetADisposedModel()
    {
        var models = new ServedModels();
        var probes = new System.Collections.Concurrent.ConcurrentBag<Probe>();
        var first = new Probe("m");
        probes.Add(first);
        models.Add(first, Info);
        using var stop = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
        var failures = 0;
        var workers = Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var lease = models.Acquire("m");
                var probe = (Probe)lease.Backend;
                Interlocked.Increment(ref probe.Users);
                if (Volatile.Read(ref probe.Disposals) != 0) Interlocked.Increment(ref failures);
                Thread.SpinWait(50);
                Interlocked.Decrement(ref probe.Users);
            }
        })).ToList();
        while (!stop.IsCancellationRequested)
        {
            var next = new Probe("m");
            probes.Add(next);
            models.Replace(next, Info);
            await Task.Yield();
        }
        await Task.WhenAll(workers);
        Assert.Equal(0, failures);
        Assert.All(probes, p => Assert.False(p.DisposedWhileUsed));
        Assert.Single(probes, p => p.Disposals == 0);
        Assert.Empty(models.Retiring());
        // Counts since start keep what disposed models counted.
        Assert.Equal(10L * probes.Count, models.Statistics.PrefixCacheQueries);
    }
}
