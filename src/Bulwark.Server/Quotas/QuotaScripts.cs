namespace Bulwark.Server.Quotas;

/// <summary>
/// The Lua that runs inside Redis, so each admission is one atomic step for every replica and
/// time comes from Redis's own clock (<c>TIME</c>), not from replicas whose clocks may disagree.
/// Same algorithm, order of checks and constants as <see cref="InMemoryQuotaStore"/>. Numbers are
/// kept with 17 significant digits because a TAT in microseconds since 1970 has 16.
/// KEYS[1] = hash {rt, tt, rf, day, used, hour, rh, th}; KEYS[2] = sorted set of open leases scored by expiry.
/// <c>rf</c> is the running total of token time refunded (µs), as in the in-memory store: an
/// admission returns its slot end plus the refunds made before it, so a later settlement can tell
/// how far the refunds in between may have moved that slot back. <c>rh</c> and <c>th</c> are the
/// requests and tokens charged in UTC hour <c>hour</c>, as <c>used</c> is the tokens of UTC day <c>day</c>.
/// The last argument of each script is "now" in µs when a test drives the clock by hand, and empty
/// otherwise (then, always in production, now is Redis's <c>TIME</c>).
/// </summary>
internal static class QuotaScripts
{
    /// <summary>
    /// The scripts' clock, as Lua: <c>now</c> in microseconds from <c>ARGV[argument]</c> (a test clock), or
    /// Redis's own <c>TIME</c> when that argument is empty, so every replica reads one clock.
    /// </summary>
    internal static string Now(int argument) => $$"""
        local now = tonumber(ARGV[{{argument}}])
        if now == nil then
          local t = redis.call('TIME')
          now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        end

        """;

    /// <summary>ARGV: rpm, tpm, tpd, max concurrent, tokens, lease id, lease lifetime (µs), rph, tph, now.</summary>
    public static readonly string Admit = Now(10) + """
        local W, HOUR, DAY, TOL = 60000000, 3600000000, 86400000000, 0.5
        local rpm, tpm, tpd, maxc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
        local tokens, lease, leaseTtl = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
        local rph, tph = tonumber(ARGV[8]), tonumber(ARGV[9])
        local s = redis.call('HMGET', KEYS[1], 'rt', 'tt', 'day', 'used', 'rf', 'hour', 'rh', 'th')
        local rt, tt, rf = tonumber(s[1]) or 0, tonumber(s[2]) or 0, tonumber(s[5]) or 0
        local day, hour = math.floor(now / DAY), math.floor(now / HOUR)
        local untilHour = (hour + 1) * HOUR - now
        local used, rh, th = 0, 0, 0
        if tonumber(s[3]) == day then used = tonumber(s[4]) or 0 end
        if tonumber(s[6]) == hour then rh, th = tonumber(s[7]) or 0, tonumber(s[8]) or 0 end
        -- Of the limits that refuse, the one that keeps the request out longest is named.
        local limit, wait = nil, 0
        local function consider(name, w) if limit == nil or w > wait then limit, wait = name, w end end
        local newR, newT = rt, tt
        if rpm > 0 then
          newR = math.max(rt, now) + W / rpm
          if newR - now > W + TOL then consider('requests', newR - now - W) end
        end
        if rph > 0 and rh + 1 > rph then consider('requests_per_hour', untilHour) end
        if tpm > 0 and tokens > 0 then
          newT = math.max(tt, now) + tokens * (W / tpm)
          if tokens > tpm or newT - now > W + TOL then consider('tokens', math.min(newT - now - W, W)) end
        end
        if tph > 0 and th + tokens > tph then consider('tokens_per_hour', untilHour) end
        if tpd > 0 and used + tokens > tpd then consider('tokens_per_day', (day + 1) * DAY - now) end
        if maxc > 0 then
          redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
          if redis.call('ZCARD', KEYS[2]) >= maxc then consider('concurrency', 1000000) end
        end
        if limit == nil then
          rt, tt = newR, newT
          if rph > 0 then rh = rh + 1 end
          th, used = th + tokens, used + tokens
          if maxc > 0 then
            redis.call('ZADD', KEYS[2], now + leaseTtl, lease)
            redis.call('PEXPIRE', KEYS[2], math.ceil(leaseTtl / 1000))
          end
          redis.call('HSET', KEYS[1], 'rt', string.format('%.17g', rt), 'tt', string.format('%.17g', tt), 'day', day, 'used', used,
            'hour', hour, 'rh', rh, 'th', th)
          redis.call('PEXPIRE', KEYS[1], 90000000)
        end
        -- The figures describe the state as it now stands: charged when admitted, untouched when refused.
        local remR, resetR, remT, resetT, remRH, remTH = -1, 0, -1, 0, -1, -1
        if rpm > 0 then
          resetR = math.max(rt, now) - now
          remR = math.max(0, math.floor((W - resetR) / (W / rpm) + 1e-6))
        end
        if tpm > 0 and tokens > 0 then
          resetT = math.max(tt, now) - now
          remT = math.max(0, math.floor((W - resetT) / (W / tpm) + 1e-6))
        end
        if rph > 0 then remRH = math.max(0, rph - rh) end
        if tph > 0 then remTH = math.max(0, tph - th) end
        local retry, until_ = 0, 0
        if limit == nil then until_ = math.floor(newT + rf) else retry = math.ceil(math.max(wait, 1)) end
        return {limit == nil and 1 or 0, limit or '', retry, remR, math.ceil(resetR), remT, math.ceil(resetT), day, until_,
          hour, remRH, remTH, math.ceil(untilHour)}
        """;

    /// <summary>ARGV: tpm, max concurrent, reserved, actual, day charged, lease id, tokens reserved until, hour charged, now.</summary>
    public static readonly string Settle = Now(9) + """
        local W = 60000000
        local tpm, maxc = tonumber(ARGV[1]), tonumber(ARGV[2])
        local reserved, actual, day, lease, reservedUntil = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
        local hour = tonumber(ARGV[8])
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
          -- The counters are corrected only in the hour and day the reservation was charged to.
          if tonumber(redis.call('HGET', KEYS[1], 'hour')) == hour then
            local th = tonumber(redis.call('HGET', KEYS[1], 'th')) or 0
            redis.call('HSET', KEYS[1], 'th', math.max(0, th + delta))
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
