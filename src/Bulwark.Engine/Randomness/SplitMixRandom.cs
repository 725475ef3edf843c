namespace Bulwark.Engine.Randomness;

/// <summary>
/// Small seeded generator (xoshiro256** seeded through SplitMix64). Our own so a seed gives the
/// same tokens on every .NET version and platform, which System.Random does not promise.
/// </summary>
internal struct SplitMixRandom
{
    private ulong _s0, _s1, _s2, _s3;

    public SplitMixRandom(ulong seed)
    {
        _s0 = SplitMix(ref seed);
        _s1 = SplitMix(ref seed);
        _s2 = SplitMix(ref seed);
        _s3 = SplitMix(ref seed);
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    public ulong NextUInt64()
    {
        var result = RotateLeft(_s1 * 5, 7) * 9;
        var t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>Seed of choice <paramref name="index"/> of a request seeded with <paramref name="seed"/>.</summary>
    public static ulong DeriveSeed(long seed, int index)
    {
        var x = unchecked((ulong)seed ^ ((ulong)(uint)index * 0x9E3779B97F4A7C15UL));
        return SplitMix(ref x);
    }

    private static ulong SplitMix(ref ulong x)
    {
        var z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private static ulong RotateLeft(ulong x, int k) => (x << k) | (x >> (64 - k));
}
