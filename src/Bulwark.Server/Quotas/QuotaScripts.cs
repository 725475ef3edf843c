namespace Bulwark.Server.Quotas;

/// <summary>
/// The Lua that runs inside Redis, so each admission is one atomic step for every replica and
/// time comes from Redis's own clock (<c>TIME</c>), not from replicas whose clocks may disagree.
/// Same algorithm and constants as <see cref="InMemoryQuotaStore"/>. Numbers are kept with 17
/// significant digits because a TAT in microseconds since 1970 has 16.
/// KEYS[1] = hash {rt, tt, rf, day, used}; KEYS[2] = sorted set of open leases scored by expiry.
/// <c>rf</c> is the running total of token time refunded (µs), as in the in-memory store: an
/// admission returns its slot end plus the refunds made before it, so a later settlement can tell
/// how far the refunds in between may have moved that slot back.
/// The last argument of each script is "now" in µs when a test drives the clock by hand, and empty
/// otherwise (then, always in production, now is Redis's <c>TIME</c>).
/// </summary>
internal static class QuotaScripts
{
    public const string Admit = """
        local now = tonumber(ARGV[8])
        if now == nil then
          local t = redis.call('TIME')
          now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        end
        local W, DAY, TOL = 60000000, 86400000000, 0.5
        local rpm, tpm, tpd, maxc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
        local tokens, lease, leaseTtl = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
        local s = redis.call('HMGET', KEYS[1], 'rt', 'tt', 'day', 'used', 'rf')
        local rt, tt, rf = tonumber(s[1]) or 0, tonumber(s[2]) or 0, tonumber(s[5]) or 0
        local day = math.floor(now / DAY)
        local used = 0
        if tonumber(s[3]) == day then used = tonumber(s[4]) or 0 end
        local function remaining(ahead, interval) return math.floor((W - ahead) / interval + 1e-6) end
        local function reject(limit, retry, remR, resetR, remT, resetT)
          return {0, limit, math.ceil(math.max(retry, 1)), remR, math.ceil(resetR), remT, math.ceil(resetT), day}
        end
        local remR, resetR, remT, resetT, newR, newT = -1, 0, -1, 0, rt, tt
        if rpm > 0 then
          local interval = W / rpm
          local from = math.max(rt, now)
          newR = from + interval
          if newR - now > W + TOL then return reject('requests', newR - now - W, remaining(from - now, interval), from - now, -1, 0) end
          remR, resetR = remaining(newR - now, interval), newR - now
        end
        if tpm > 0 and tokens > 0 then
          local interval = W / tpm
          local from = math.max(tt, now)
          newT = from + tokens * interval
          if tokens > tpm or newT - now > W + TOL then
            return reject('tokens', math.min(newT - now - W, W), remR, resetR, remaining(from - now, interval), from - now)
          end
          remT, resetT = remaining(newT - now, interval), newT - now
        end
        if tpd > 0 and used + tokens > tpd then return reject('tokens_per_day', (day + 1) * DAY - now, remR, resetR, remT, resetT) end
        if maxc > 0 then
          redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
          if redis.call('ZCARD', KEYS[2]) >= maxc then return reject('concurrency', 1000000, remR, resetR, remT, resetT) end
          redis.call('ZADD', KEYS[2], now + leaseTtl, lease)
          redis.call('PEXPIRE', KEYS[2], math.ceil(leaseTtl / 1000))
        end
        redis.call('HSET', KEYS[1], 'rt', string.format('%.17g', newR), 'tt', string.format('%.17g', newT), 'day', day, 'used', used + tokens)
        redis.call('PEXPIRE', KEYS[1], 90000000)
        return {1, '', 0, remR, math.ceil(resetR), remT, math.ceil(resetT), day, math.floor(newT + rf)}
        """;

    public const string Settle = """
        local now = tonumber(ARGV[8])
        if now == nil then
          local t = redis.call('TIME')
          now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        end
        local W = 60000000
        local tpm, maxc = tonumber(ARGV[1]), tonumber(ARGV[2])
        local reserved, actual, day, lease, reservedUntil = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
        local delta = actual - reserved
        if delta ~= 0 and redis.call('EXISTS', KEYS[1]) == 1 then
          if tpm > 0 then
            local s = redis.call('HMGET', KEYS[1], 'tt', 'rf')
            local tt, rf = tonumber(s[1]) or 0, tonumber(s[2]) or 0
            local interval = W / tpm
            if delta > 0 then tt = math.max(tt, now) + delta * interval
            else
              -- Refund only what of this reservation has not drained yet, never below now. Refunds
              -- made since the admission may have moved its slot back; assuming they all did keeps
              -- the estimate of its end on the safe side, and it never ends after the current TAT.
              local stop = math.min(reservedUntil - rf, tt)
              local before = tt
              tt = math.max(tt - math.min(-delta * interval, math.max(0, stop - now)), now)
              rf = rf + math.max(0, before - tt)
            end
            redis.call('HSET', KEYS[1], 'tt', string.format('%.17g', tt), 'rf', string.format('%.17g', rf))
          end
          if tonumber(redis.call('HGET', KEYS[1], 'day')) == day then
            local used = tonumber(redis.call('HGET', KEYS[1], 'used')) or 0
            redis.call('HSET', KEYS[1], 'used', math.max(0, used + delta))
          end
        end
        if maxc > 0 then redis.call('ZREM', KEYS[2], lease) end
        return 1
        """;
}
