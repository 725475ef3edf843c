using System.Collections.Concurrent;
using Bulwark.Server.Observability;
using Bulwark.Server.Requests;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Bulwark.Server.Quotas;

/// <summary>
/// Shared quotas that outlive Redis going away (docs/reliability.md). While Redis answers, every
/// admission and settlement is <see cref="RedisQuotaStore"/>'s. The first Redis failure switches this
/// replica to degraded mode (one log line, <c>bulwark_quota_store_switches_total</c>,
/// <c>bulwark_quota_store_mode</c>), and from then on no request waits on Redis: by
/// <see cref="QuotaOptions.WhenRedisDown"/>, requests of keys with limits are refused with 503, or
/// admitted against this replica's share of each limit (<see cref="LocalQuotaShares"/>). Every
/// <see cref="ProbeInterval"/> a probe pings Redis; once it answers, what this replica admitted on its
/// own is charged to Redis, settlements that could not reach it are replayed, and it reads Redis again.
/// </summary>
/// <remarks>
/// Written by hand rather than with Polly's circuit breaker: leaving the open state needs that
/// reconciliation step before any request reads Redis again, which a half-open trial request skips.
/// </remarks>
public sealed class ResilientQuotaStore : IQuotaStore, IAsyncDisposable
{
    /// <summary>How often a degraded replica tries Redis again.</summary>
    public static readonly TimeSpan ProbeInterval = TimeSpan.FromSeconds(1);

    /// <summary>Most settlements kept for Redis while it is down; beyond it their slots expire by <see cref="RedisQuotaStore.LeaseLifetime"/> (no longer renewed) and their tokens stay charged.</summary>
    public const int MaxPendingSettlements = 100_000;

    private const int Shared = 0, Degraded = 1;

    private readonly RedisQuotaStore _redis;
    private readonly RedisDownPolicy _policy;
    private readonly Func<int?> _liveReplicas;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ServerMetrics _metrics;
    private readonly LocalQuotaShares _shares;
    private readonly ConcurrentQueue<Settlement> _pending = new();
    private readonly CancellationTokenSource _stopping = new();
    private int _mode = Shared;
    private int _probing;
    private long _degradedSince;
    private Task _probe = Task.CompletedTask;

    private sealed record Settlement(string KeyId, KeyLimits Limits, string LeaseId, long Reserved, long Actual, QuotaVerdict Admitted);

    /// <param name="liveReplicas">The replicas alive now, this one included; null when unknown (then nothing is shared out).</param>
    public ResilientQuotaStore(RedisQuotaStore redis, RedisDownPolicy policy, Func<int?> liveReplicas, TimeProvider time, ILogger<ResilientQuotaStore> logger,
        ServerMetrics metrics)
    {
        (_redis, _policy, _liveReplicas, _time, _logger, _metrics) = (redis, policy, liveReplicas, time, logger, metrics);
        _shares = new LocalQuotaShares(time);
    }

    /// <summary>Whether this replica reads quotas from Redis now (false while degraded).</summary>
    public bool IsShared => Volatile.Read(ref _mode) == Shared;

    public async ValueTask<QuotaVerdict> AdmitAsync(string keyId, KeyLimits limits, long tokens, string leaseId, CancellationToken ct)
    {
        if (IsShared)
        {
            try
            {
                var verdict = await _redis.AdmitAsync(keyId, limits, tokens, leaseId, ct);
                if (verdict.Admitted && limits.MaxConcurrent > 0) _shares.SlotOpened(keyId);
                return verdict;
            }
            catch (Exception e) when (IsRedisFailure(e))
            {
                EnterDegraded(e);
            }
        }
        if (_policy == RedisDownPolicy.Refuse || _liveReplicas() is not { } replicas) throw QuotaStoreUnavailableException.RedisDown();
        return await _shares.AdmitAsync(keyId, limits, tokens, leaseId, replicas);
    }

    /// <summary>Never throws for Redis: a settlement that cannot reach it now is kept and replayed when it answers.</summary>
    public async ValueTask SettleAsync(string keyId, KeyLimits limits, string leaseId, long reserved, long actual, QuotaVerdict admitted, CancellationToken ct)
    {
        var (slotLocal, tokensLocal) = await _shares.SettleAsync(keyId, limits, leaseId, reserved, actual, admitted);
        if (tokensLocal) EnsureProbing(); // what this settlement charged locally is owed to Redis
        var remote = limits with { MaxConcurrent = slotLocal ? 0 : limits.MaxConcurrent };
        if (tokensLocal) (remote, reserved, actual) = (remote with { TokensPerMinute = 0, TokensPerDay = 0 }, 0, 0);
        if (remote.MaxConcurrent == 0 && reserved == actual) return; // nothing of it lives in Redis
        var settlement = new Settlement(keyId, remote, leaseId, reserved, actual, admitted);
        if (IsShared)
        {
            try
            {
                await _redis.SettleAsync(keyId, remote, leaseId, reserved, actual, admitted, ct);
                return;
            }
            catch (Exception e) when (IsRedisFailure(e))
            {
                EnterDegraded(e);
            }
        }
        if (_pending.Count < MaxPendingSettlements) _pending.Enqueue(settlement);
        EnsureProbing();
    }

    public TimeSpan? RenewInterval => _redis.RenewInterval;

    /// <summary>
    /// Renews in Redis while quotas are shared. A renewal that cannot reach Redis switches to degraded mode
    /// as an admission would; while degraded nothing is renewed (the slots are counted here, and the leases
    /// still open when Redis answers again are renewed from then on).
    /// </summary>
    public async ValueTask RenewAsync(IReadOnlyCollection<OpenLease> leases, CancellationToken ct)
    {
        if (!IsShared) return;
        try { await _redis.RenewAsync(leases, ct); }
        catch (Exception e) when (IsRedisFailure(e)) { EnterDegraded(e); }
    }

    private static bool IsRedisFailure(Exception e) => e is RedisException or RedisTimeoutException;

    private void EnterDegraded(Exception cause)
    {
        if (Interlocked.CompareExchange(ref _mode, Degraded, Shared) != Shared) return;
        _degradedSince = _time.GetTimestamp();
        _shares.BeginEpisode();
        var local = _policy == RedisDownPolicy.Local;
        _metrics.QuotaStoreMode = local ? 1 : 2;
        _metrics.QuotaStoreSwitches.Add(1, new KeyValuePair<string, object?>("to", local ? "local" : "refuse"));
        if (local)
            _logger.LogWarning("quotas: Redis ({Redis}) cannot be reached ({Error}); keys with limits are served from this replica's share of each limit " +
                "({Replicas} live replicas; each key's minute taken as spent) until it answers", _redis.Description, cause.Message, _liveReplicas()?.ToString() ?? "unknown");
        else
            _logger.LogError("quotas: Redis ({Redis}) cannot be reached ({Error}); requests of keys with limits are refused with 503 until it answers " +
                "(Bulwark:Quotas:WhenRedisDown=refuse)", _redis.Description, cause.Message);
        EnsureProbing();
    }

    private void EnsureProbing()
    {
        if (Interlocked.CompareExchange(ref _probing, 1, 0) != 0) return;
        _probe = Task.Run(ProbeAsync);
    }

    /// <summary>Until Redis answers and nothing is owed to it: ping, charge, replay, switch back.</summary>
    private async Task ProbeAsync()
    {
        using var timer = new PeriodicTimer(ProbeInterval, _time);
        try
        {
            do
            {
                try
                {
                    await _redis.PingAsync();
                    // Charge first, so the replicas' local admissions are in Redis before it decides again; then
                    // switch, then charge what was admitted locally while switching.
                    var (requests, tokens) = await ReconcileAsync();
                    if (Interlocked.CompareExchange(ref _mode, Shared, Degraded) == Degraded)
                    {
                        var (r, t) = await ReconcileAsync();
                        _metrics.QuotaStoreMode = 0;
                        _metrics.QuotaStoreSwitches.Add(1, new KeyValuePair<string, object?>("to", "shared"));
                        _logger.LogInformation("quotas: Redis ({Redis}) answers again after {Seconds:0.0} s; {Requests} requests and {Tokens} tokens admitted " +
                            "locally were charged to it; quotas are shared again", _redis.Description, _time.GetElapsedTime(_degradedSince).TotalSeconds,
                            requests + r, tokens + t);
                    }
                }
                catch (Exception e) when (IsRedisFailure(e)) { }
                if (IsShared && _pending.IsEmpty && !_shares.HasDebts) break;
            }
            while (await timer.WaitForNextTickAsync(_stopping.Token));
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested) { return; }
        catch (Exception e)
        {
            _logger.LogError(e, "quotas: the Redis probe failed");
        }
        Volatile.Write(ref _probing, 0);
        // A failure between the last check and the line above found the probe still running and started none.
        if (!IsShared || !_pending.IsEmpty || _shares.HasDebts) EnsureProbing();
    }

    private async Task<(long Requests, long Tokens)> ReconcileAsync()
    {
        var charged = await _shares.ChargeAsync(_redis, (keyId, lease) => _redis.SettleAsync(keyId, KeyLimits.None with { MaxConcurrent = 1 }, lease, 0, 0, default, default));
        while (_pending.TryPeek(out var s))
        {
            await _redis.SettleAsync(s.KeyId, s.Limits, s.LeaseId, s.Reserved, s.Actual, s.Admitted, default);
            _pending.TryDequeue(out _);
        }
        return charged;
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        await _probe.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stopping.Dispose();
    }
}
