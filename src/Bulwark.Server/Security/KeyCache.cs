using System.Collections.Concurrent;
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
    private readonly ConcurrentDictionary<string, DateTimeOffset> _lastUsed = new(StringComparer.Ordinal);

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
    public void MarkUsed(string id, DateTimeOffset at) => _lastUsed[id] = at;

    public IReadOnlyList<KeyValuePair<string, DateTimeOffset>> TakeLastUsed()
    {
        var taken = new List<KeyValuePair<string, DateTimeOffset>>();
        foreach (var id in _lastUsed.Keys)
            if (_lastUsed.TryRemove(id, out var at)) taken.Add(new(id, at));
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
