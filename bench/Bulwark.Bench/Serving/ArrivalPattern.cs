using System.Globalization;

namespace Bulwark.Bench.Serving;

/// <summary>
/// When the requests of one <c>bench/run engine</c> concurrency level arrive (<c>--arrival</c>):
/// <c>burst</c> all at once (what "32 concurrent" measured before: mostly the queue);
/// <c>poisson:RATE</c> a Poisson process of RATE requests per second (exponential gaps drawn from the seed);
/// <c>staggered:MS</c> one request every MS milliseconds.
/// </summary>
internal sealed record ArrivalPattern(ArrivalKind Kind, double Value)
{
    public static readonly ArrivalPattern Burst = new(ArrivalKind.Burst, 0);

    /// <summary>The largest rate and gap accepted: beyond them a run is all burst or all waiting.</summary>
    public const double MaxRate = 10_000, MaxGapMs = 600_000;

    public static ArrivalPattern Parse(string text)
    {
        var t = text.Trim().ToLowerInvariant();
        if (t == "burst")
            return Burst;
        var colon = t.IndexOf(':');
        var (name, number) = colon < 0 ? (t, "") : (t[..colon], t[(colon + 1)..]);
        var ok = double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value);
        return name switch
        {
            "poisson" when ok && value > 0 && value <= MaxRate => new ArrivalPattern(ArrivalKind.Poisson, value),
            "staggered" when ok && value >= 0 && value <= MaxGapMs => new ArrivalPattern(ArrivalKind.Staggered, value),
            _ => throw new ArgumentException(
                $"--arrival must be burst, poisson:RATE (requests per second, above 0 and at most {MaxRate}) or staggered:MS (0 to {MaxGapMs} milliseconds); got \"{text}\""),
        };
    }

    /// <summary>Each request's arrival in milliseconds after the first; the same for the same seed.</summary>
    public double[] OffsetsMs(int count, int seed)
    {
        var offsets = new double[count];
        var random = new Random(seed);
        for (var i = 1; i < count; i++)
        {
            offsets[i] = Kind switch
            {
                ArrivalKind.Staggered => i * Value,
                // Inverse-CDF draw of an exponential gap with mean 1/rate seconds; 1 - NextDouble() is in (0, 1].
                ArrivalKind.Poisson => offsets[i - 1] + -Math.Log(1 - random.NextDouble()) / Value * 1000,
                _ => 0,
            };
        }
        return offsets;
    }

    public override string ToString() => Kind switch
    {
        ArrivalKind.Poisson => $"poisson:{Value.ToString(CultureInfo.InvariantCulture)}",
        ArrivalKind.Staggered => $"staggered:{Value.ToString(CultureInfo.InvariantCulture)}",
        _ => "burst",
    };
}

internal enum ArrivalKind { Burst, Poisson, Staggered }
