using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Quotas;

/// <summary>
/// What one replica may admit on its own while Redis is unreachable, and the record of it that is
/// charged to Redis when it answers again. The replicas together never admit more than one shared
/// bucket would have:
/// <list type="bullet">
/// <item>each limit is divided by the live replicas, rounded down (a limit smaller than the replica
/// count cannot be shared and is refused with 503, as are hourly limits and a daily token budget: how
/// much of them is left lived in Redis);</item>
/// <item>each key's minute starts spent, since this replica cannot know how much of it the others
/// used before Redis went away: the shares refill at limit ÷ replicas, with no burst to begin with;</item>
/// <item>concurrency counts every slot this replica holds, those opened in Redis before the outage
/// included;</item>
/// <item>everything admitted here is kept as a debt and charged to Redis before this replica reads
/// Redis again (<see cref="RedisQuotaStore.ChargeAsync"/>), with the slots still open here.</item>
/// </list>
/// Each outage starts an episode with an empty local store (<see cref="BeginEpisode"/>).
/// </summary>
internal sealed class LocalQuotaShares(TimeProvider time)
{
    /// <summary>One admission at 1 request/min and 1 token/min moves both TATs a whole minute ahead: the minute is spent.</summary>
    private static readonly KeyLimits Spent = KeyLimits.None with { RequestsPerMinute = 1, TokensPerMinute = 1 };

    private Episode _episode = new(new InMemoryQuotaStore(time));
    // This replica's open concurrency slots per key, wherever they were opened (Redis or here).
    private readonly ConcurrentDictionary<string, StrongBox<long>> _slots = new(StringComparer.Ordinal);
    // Leases whose slot was opened here (not in Redis), with their key.
    private readonly ConcurrentDictionary<string, string> _localSlots = new(StringComparer.Ordinal);
    // Leases whose tokens were reserved here: the store and the share they were reserved against.
    private readonly ConcurrentDictionary<string, (InMemoryQuotaStore Store, KeyLimits Share)> _localTokens = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Debt> _debts = new(StringComparer.Ordinal);

    private sealed record Episode(InMemoryQuotaStore Store)
    {
        public ConcurrentDictionary<string, byte> Seeded { get; } = new(StringComparer.Ordinal);
    }

    /// <summary>What a replica admitted for one key and has not charged to Redis yet.</summary>
    private sealed class Debt(KeyLimits limits)
    {
        public readonly Lock Gate = new();
        public KeyLimits Limits = limits;
        public long Requests;
        public long Tokens;
        public bool Removed;
    }

    /// <summary>Starts an outage with empty local buckets (leases of an earlier one settle in theirs).</summary>
    public void BeginEpisode() => Volatile.Write(ref _episode, new Episode(new InMemoryQuotaStore(time)));

    /// <summary>Keys owing Redis something: local admissions or slots still open here.</summary>
    public bool HasDebts => !_debts.IsEmpty || !_localSlots.IsEmpty;

    /// <summary>Notes a slot Redis opened for this replica, so a later outage counts it against this replica's share.</summary>
    public void SlotOpened(string keyId) => Interlocked.Increment(ref _slots.GetOrAdd(keyId, static _ => new StrongBox<long>()).Value);

    /// <summary>Admits against this replica's share of <paramref name="limits"/> among <paramref name="replicas"/>.</summary>
    /// <exception cref="QuotaStoreUnavailableException">A limit cannot be shared without Redis.</exception>
    public async ValueTask<QuotaVerdict> AdmitAsync(string keyId, KeyLimits limits, long tokens, string leaseId, int replicas)
    {
        // Budgets over an hour or a day cannot be shared: how much of them is left lived in Redis.
        if (limits.RequestsPerHour > 0 || ((limits.TokensPerDay > 0 || limits.TokensPerHour > 0) && tokens > 0)) throw QuotaStoreUnavailableException.RedisDown();
        // Every field by position, not `limits with { ... }`: a limit added to KeyLimits must not pass through undivided,
        // so it is named here until it is shared too (or refused, as the hourly and daily budgets are).
        var share = new KeyLimits(Part(limits.RequestsPerMinute, replicas), Part(limits.TokensPerMinute, replicas), 0, Part(limits.MaxConcurrent, replicas),
            RequestsPerHour: 0, TokensPerHour: 0);
        var episode = Volatile.Read(ref _episode);
        if (!episode.Seeded.ContainsKey(keyId))
        {
            // Seeding twice is harmless: the second seed finds the minute spent and is refused, charging nothing.
            await episode.Store.AdmitAsync(keyId, Spent, 1, "", default);
            episode.Seeded.TryAdd(keyId, 0);
        }
        if (share.MaxConcurrent > 0 && !TryTakeSlot(keyId, share.MaxConcurrent))
            return new QuotaVerdict(false, QuotaLimits.Concurrency, InMemoryQuotaStore.ConcurrencyRetryMicros, -1, 0, -1, 0, 0);
        var verdict = await episode.Store.AdmitAsync(keyId, share with { MaxConcurrent = 0 }, tokens, leaseId, default);
        if (!verdict.Admitted)
        {
            if (share.MaxConcurrent > 0) ReleaseSlot(keyId);
            return verdict;
        }
        if (share.MaxConcurrent > 0) _localSlots[leaseId] = keyId;
        if (share.TokensPerMinute > 0 && tokens > 0) _localTokens[leaseId] = (episode.Store, share);
        AddDebt(keyId, limits, share.RequestsPerMinute > 0 ? 1 : 0, share.TokensPerMinute > 0 ? tokens : 0);
        return verdict;
    }

    /// <summary>
    /// Closes this replica's count of the lease's slot and settles the tokens it reserved here; says
    /// which parts were local, so the caller settles the rest in Redis.
    /// </summary>
    public async ValueTask<(bool SlotWasLocal, bool TokensWereLocal)> SettleAsync(string keyId, KeyLimits limits, string leaseId, long reserved, long actual, QuotaVerdict admitted)
    {
        var slotLocal = false;
        if (limits.MaxConcurrent > 0)
        {
            ReleaseSlot(keyId);
            slotLocal = _localSlots.TryRemove(leaseId, out _);
        }
        if (!_localTokens.TryRemove(leaseId, out var local)) return (slotLocal, false);
        await local.Store.SettleAsync(keyId, local.Share with { MaxConcurrent = 0 }, leaseId, reserved, actual, admitted, default);
        AddDebt(keyId, limits, 0, actual - reserved);
        return (slotLocal, true);
    }

    /// <summary>
    /// Charges every debt to Redis, key by key, and hands the slots still open here over to it (from then
    /// on they settle in Redis). Stops at the first failure, keeping what was not charged.
    /// </summary>
    /// <returns>The requests and tokens charged.</returns>
    public async Task<(long Requests, long Tokens)> ChargeAsync(RedisQuotaStore redis, Func<string, string, ValueTask> releaseRemote)
    {
        long requests = 0, tokens = 0;
        var leasesByKey = _localSlots.GroupBy(p => p.Value, p => p.Key).ToDictionary(g => g.Key, g => g.ToList());
        foreach (var keyId in _debts.Keys.Union(leasesByKey.Keys).ToList())
        {
            var debt = _debts.GetValueOrDefault(keyId);
            long r = 0, t = 0;
            var limits = KeyLimits.None;
            if (debt is not null) lock (debt.Gate) (r, t, limits) = (debt.Requests, Math.Max(0, debt.Tokens), debt.Limits);
            var leases = leasesByKey.GetValueOrDefault(keyId) ?? [];
            await redis.ChargeAsync(keyId, limits, r, t, leases);
            foreach (var lease in leases)
            {
                // Settled here while it was being charged: the settlement did not reach Redis, so close it there now.
                if (!_localSlots.TryRemove(lease, out _)) await releaseRemote(keyId, lease);
            }
            if (debt is not null)
            {
                lock (debt.Gate)
                {
                    debt.Requests -= r;
                    debt.Tokens -= t;
                    if (debt.Requests <= 0 && debt.Tokens <= 0)
                    {
                        debt.Removed = true;
                        _debts.TryRemove(KeyValuePair.Create(keyId, debt));
                    }
                }
            }
            requests += r;
            tokens += t;
        }
        return (requests, tokens);
    }

    private void AddDebt(string keyId, KeyLimits limits, long requests, long tokens)
    {
        if (requests == 0 && tokens == 0) return;
        while (true)
        {
            var debt = _debts.GetOrAdd(keyId, static (_, l) => new Debt(l), limits);
            lock (debt.Gate)
            {
                if (debt.Removed) continue; // charged and removed meanwhile: start a new one
                debt.Limits = limits;
                debt.Requests += requests;
                debt.Tokens += tokens;
                return;
            }
        }
    }

    private bool TryTakeSlot(string keyId, long share)
    {
        var box = _slots.GetOrAdd(keyId, static _ => new StrongBox<long>());
        for (var seen = Volatile.Read(ref box.Value); seen < share; seen = Volatile.Read(ref box.Value))
            if (Interlocked.CompareExchange(ref box.Value, seen + 1, seen) == seen) return true;
        return false;
    }

    // Never below zero: a key whose concurrency limit was added while a lease was open settles one never counted.
    private void ReleaseSlot(string keyId)
    {
        if (!_slots.TryGetValue(keyId, out var box)) return;
        for (var seen = Volatile.Read(ref box.Value); seen > 0; seen = Volatile.Read(ref box.Value))
            if (Interlocked.CompareExchange(ref box.Value, seen - 1, seen) == seen) return;
    }

    /// <summary>This replica's part of <paramref name="limit"/> (0: no limit); a limit too small to divide cannot be shared.</summary>
    private static long Part(long limit, int replicas) =>
        limit == 0 ? 0 : limit / replicas is var part and > 0 ? part : throw QuotaStoreUnavailableException.RedisDown();
}
