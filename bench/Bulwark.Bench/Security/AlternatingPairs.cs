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
