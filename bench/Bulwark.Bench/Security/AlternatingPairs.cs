using Bulwark.Server.Requests;
using Bulwark.Server.Security;

namespace Bulwark.Bench.Security;

/// <summary>
/// Times two ways of doing the same thing in one run: after <c>warmup</c> unmeasured pairs, each
/// measured pair runs both, which goes first switching every pair, so neither always runs on a
/// warmer cache and both see the same machine state. Used by the security overhead benchmarks.
/// </summary>
internal static class AlternatingPairs
{
    /// <summary>A bench key whose limits are high enough never to refuse, so every limit's arithmetic still runs.</summary>
    public static KeySpec UnrefusedKey => new()
    {
        Name = "bench", Limits = new KeyLimits(1_000_000_000, 1_000_000_000_000, 1_000_000_000_000_000, 1_000_000),
    };

    /// <summary>
    /// Unmeasured pairs until the code both paths run is compiled for good: at least <paramref name="minimum"/>,
    /// then until no method was JIT-compiled during the last <paramref name="quietPairs"/> pairs and
    /// <paramref name="quietTime"/> (tiered compilation recompiles hot methods in a background thread for a
    /// while after start — with dynamic PGO in two steps — and on a loaded machine that thread can wait for a
    /// core for long: thousands of requests), or <paramref name="limit"/> passed.
    /// </summary>
    /// <returns>The pairs run, and whether the JIT went quiet (false: stopped at the limit).</returns>
    public static async Task<(int Pairs, bool Quiet)> WarmUntilJitQuietAsync(Func<Task<double>> first, Func<Task<double>> second, int minimum, int quietPairs, TimeSpan quietTime, TimeSpan limit)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var pairs = 0;
        var quiet = 0;
        var quietSince = clock.Elapsed;
        var compiled = System.Runtime.JitInfo.GetCompiledMethodCount();
        while (pairs < minimum || quiet < quietPairs || clock.Elapsed - quietSince < quietTime)
        {
            if (clock.Elapsed > limit) return (pairs, false);
            await first();
            await second();
            pairs++;
            var now = System.Runtime.JitInfo.GetCompiledMethodCount();
            if (now != compiled) (quiet, quietSince) = (0, clock.Elapsed);
            else quiet++;
            compiled = now;
        }
        return (pairs, true);
    }

    /// <returns>The times <paramref name="first"/> and <paramref name="second"/> returned, pair by pair.</returns>
    public static async Task<(double[] First, double[] Second)> MeasureAsync(
        Func<Task<double>> first, Func<Task<double>> second, int warmup, int pairs, IProgress<long>? progress = null)
    {
        for (var i = 0; i < warmup; i++)
        {
            await first();
            await second();
        }
        var a = new double[pairs];
        var b = new double[pairs];
        for (var i = 0; i < pairs; i++)
        {
            if (i % 2 == 0)
            {
                a[i] = await first();
                b[i] = await second();
            }
            else
            {
                b[i] = await second();
                a[i] = await first();
            }
            progress?.Report(i + 1);
        }
        return (a, b);
    }
}
