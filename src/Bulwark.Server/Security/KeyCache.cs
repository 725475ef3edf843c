using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Bulwark.Server.Storage;

namespace Bulwark.Server.Security;

/// <summary>
/// Stored keys by id, so the request path reads memory, not the database. Entries live for
/// <see cref="SecurityOptions.KeyCacheLifetime"/> and are evicted at once when the incident log
/// says a key changed. Unknown ids are cached too (as null), and the cache is bounded, so a flood
/// of made-up ids costs one query each at most and cannot grow memory without limit. Each entry
/// also remembers the credential that last verified against it (see <see cref="CachedKey"/>).
/// An entry holds the stored instants a key stops working at (its expiry, the end of a rotation's
/// grace), and <see cref="ApiKeyAuthenticator"/> compares them with each request's time, so a cached
/// key never outlives them, however long the entry lives.
/// While the store cannot be reached, entries are served for the rest of their lifetime and no
/// longer: a key that must be looked up then is refused with 503 (<see cref="KeyStoreUnavailableException"/>),
/// never let through on a copy older than the lifetime promises.
/// </summary>
public sealed class KeyCache(KeyStore store, TimeProvider time, TimeSpan lifetime)
{
    public const int MaxEntries = 100_000;

    private readonly ConcurrentDictionary<string, CachedKey> _entries = new(StringComparer.Ordinal);
    // Perf: one box per key, written in place, so noting a use allocates nothing (a dictionary of
    // DateTimeOffset values allocates a node per write). 0 = not used since the last take.
    private readonly ConcurrentDictionary<string, StrongBox<long>> _lastUsed = new(StringComparer.Ordinal);

    /// <summary>The entry for <paramref name="id"/>; its <see cref="CachedKey.Record"/> is null when no key has that id.</summary>
    public ValueTask<CachedKey> GetAsync(ReadOnlySpan<char> id, CancellationToken ct)
    {
        var lookup = _entries.GetAlternateLookup<ReadOnlySpan<char>>();
        var now = time.GetTimestamp();
        if (lookup.TryGetValue(id, out var entry) && time.GetElapsedTime(entry.LoadedAt, now) < lifetime)
            return ValueTask.FromResult(entry);
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

    private async ValueTask<CachedKey> LoadAsync(string id, long now, CancellationToken ct)
    {
        ApiKeyRecord? record;
        try { record = await store.FindAsync(id, ct); }
        catch (Exception e) when (e is System.Data.Common.DbException or IOException or TimeoutException && !ct.IsCancellationRequested)
        {
            throw new KeyStoreUnavailableException(e);
        }
        var entry = new CachedKey(record, now);
        if (_entries.Count >= MaxEntries) _entries.Clear();
        _entries[id] = entry;
        return entry;
    }
}

/// <summary>
/// One cached key: the stored record (null when no key has the id) and the credential that last
/// passed HMAC verification against it. A request presenting that same credential again is
/// recognised by a constant-time comparison instead of a new HMAC. The remembered credential lives
/// only in this process's memory and only as long as the entry: a change to the key (revoke,
/// rotate) evicts the entry through the incident log, and every entry is reloaded after
/// <see cref="SecurityOptions.KeyCacheLifetime"/>, after which the next request verifies by HMAC again.
/// </summary>
/// <remarks>
/// Perf: HMAC-SHA-256 through OpenSSL is about 4 µs in a tight loop but, called once per request
/// among everything else a request runs, it cost 30–40 µs of latency per request in
/// <c>bench serve --compare-security</c> (its code and tables are cold by then).
/// </remarks>
public sealed class CachedKey
{
    // Compared against when nothing verified yet, so a refusal takes the same time whether or not the key was used lately.
    private static readonly string NothingVerified = new('\0', ApiKeyFormat.KeyLength);
    private string? _verified;

    internal CachedKey(ApiKeyRecord? record, long loadedAt)
    {
        Record = record;
        LoadedAt = loadedAt;
    }

    public ApiKeyRecord? Record { get; }

    internal long LoadedAt { get; }

    /// <summary>Whether <paramref name="credential"/> is the one that last verified against this key; constant time in its content.</summary>
    public bool IsVerified(ReadOnlySpan<char> credential)
    {
        var verified = Volatile.Read(ref _verified);
        var same = CryptographicOperations.FixedTimeEquals(MemoryMarshal.AsBytes(credential), MemoryMarshal.AsBytes((verified ?? NothingVerified).AsSpan()));
        return same && verified is not null;
    }

    /// <summary>Remembers <paramref name="credential"/>; call only after it passed HMAC verification against <see cref="Record"/>.</summary>
    public void RememberVerified(ReadOnlySpan<char> credential)
    {
        if (Record is null) throw new InvalidOperationException("no credential can verify against a key id that does not exist");
        Volatile.Write(ref _verified, credential.ToString());
    }
}

/// <summary>The key store could not be read (docs/reliability.md); the identity stage answers 503 <c>key_store_unavailable</c>.</summary>
public sealed class KeyStoreUnavailableException(Exception inner) : Exception("the key store cannot be reached: " + inner.Message, inner);
