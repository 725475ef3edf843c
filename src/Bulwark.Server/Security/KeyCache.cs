using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Bulwark.Server.Storage;

namespace Bulwark.Server.Security;

/// <summary>
/// Stored keys by id, so the request path reads memory, not the database. Entries live for
/// <see cref="SecurityOptions.KeyCacheLifetime"/> and are evicted at once when the incident log
/// says a key changed. Unknown ids are cached too (as null), and the cache is bounded, so a flood
/// of made-up ids costs one query each at most and cannot grow memory without limit.
/// </summary>
public sealed class KeyCache(KeyStore store, TimeProvider time, TimeSpan lifetime)
{
    public const int MaxEntries = 100_000;

    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    // Perf: one box per key, written in place, so noting a use allocates nothing (a dictionary of
    // DateTimeOffset values allocates a node per write). 0 = not used since the last take.
    private readonly ConcurrentDictionary<string, StrongBox<long>> _lastUsed = new(StringComparer.Ordinal);

    private sealed record Entry(ApiKeyRecord? Record, long LoadedAt);

    /// <summary>The record for <paramref name="id"/>, or null when no key has that id.</summary>
    public ValueTask<ApiKeyRecord?> GetAsync(ReadOnlySpan<char> id, CancellationToken ct)
    {
        var lookup = _entries.GetAlternateLookup<ReadOnlySpan<char>>();
        var now = time.GetTimestamp();
        if (lookup.TryGetValue(id, out var entry) && time.GetElapsedTime(entry.LoadedAt, now) < lifetime)
            return ValueTask.FromResult(entry.Record);
        return LoadAsync(id.ToString(), now, ct);
    }

    public void Evict(string id) => _entries.TryRemove(id, out _);

    /// <summary>Notes a successful use; written to the store in batches by <see cref="TakeLastUsed"/>'s caller.</summary>
    public void MarkUsed(string id, DateTimeOffset at)
    {
        var box = _lastUsed.GetOrAdd(id, static _ => new StrongBox<long>());
        // Never back: requests on other threads may note a later time first.
        var ticks = at.UtcTicks;
        for (var seen = Volatile.Read(ref box.Value); seen < ticks;)
        {
            var was = Interlocked.CompareExchange(ref box.Value, ticks, seen);
            if (was == seen) break;
            seen = was;
        }
    }

    /// <summary>The keys used since the last call, each with its latest use.</summary>
    public IReadOnlyCollection<KeyValuePair<string, DateTimeOffset>> TakeLastUsed()
    {
        var taken = new List<KeyValuePair<string, DateTimeOffset>>();
        foreach (var (id, box) in _lastUsed)
            if (Interlocked.Exchange(ref box.Value, 0) is var ticks and not 0) taken.Add(new(id, new DateTimeOffset(ticks, TimeSpan.Zero)));
        return taken;
    }

    private async ValueTask<ApiKeyRecord?> LoadAsync(string id, long now, CancellationToken ct)
    {
        var record = await store.FindAsync(id, ct);
        if (_entries.Count >= MaxEntries) _entries.Clear();
        _entries[id] = new Entry(record, now);
        return record;
    }
}
