using Bulwark.Server.Models;

namespace Bulwark.Server.Hosting;

/// <summary>
/// How <c>serve</c> keeps its resident size flat under a long load (configuration section <c>Bulwark:Memory</c>;
/// environment <c>Bulwark__Memory__MallocArenaMax</c>...; docs/reliability.md, "Memory over time").
/// </summary>
public sealed class MemoryOptions
{
    public const string Section = "Bulwark:Memory";

    public const int MaxMallocArenas = 1024;

    /// <summary>
    /// At most this many glibc malloc arenas (<c>mallopt(M_ARENA_MAX)</c> at start-up); 0 leaves glibc's own limit
    /// (eight per core). Ignored without glibc.
    /// </summary>
    public int MallocArenaMax { get; set; } = 2;

    /// <summary>
    /// A full, compacting collection the server asks for when, since the last gen2, the GC's committed memory or its
    /// old generations (gen2, large and pinned objects) grew by this much: the GC alone can go half an hour without a
    /// gen2 while promotions and committed free space pile up. <c>0</c>: never (the GC's own schedule only).
    /// </summary>
    public string Gen2WhenGrownBy { get; set; } = "6MiB";

    /// <summary>How often that growth is checked (and so the shortest time between two such collections).</summary>
    public TimeSpan Gen2CheckInterval { get; set; } = TimeSpan.FromSeconds(15);

    public const long MinGen2Growth = 1L << 20;
    public const long MaxGen2Growth = 1L << 40;

    /// <summary><see cref="Gen2WhenGrownBy"/> in bytes; 0 for off, -1 when malformed.</summary>
    public long Gen2WhenGrownByBytes => ServeOptions.ParseBytes(Gen2WhenGrownBy) ?? -1;

    public IEnumerable<string> Validate()
    {
        if (MallocArenaMax is < 0 or > MaxMallocArenas)
            yield return $"{Section}:MallocArenaMax must be between 0 (glibc's default) and {MaxMallocArenas}; got {MallocArenaMax}.";
        var growth = Gen2WhenGrownByBytes;
        if (growth != 0 && growth is < MinGen2Growth or > MaxGen2Growth)
            yield return $"{Section}:Gen2WhenGrownBy must be 0 (off) or a size between 1MiB and 1TiB such as 6MiB; got '{Gen2WhenGrownBy}'.";
        if (Gen2CheckInterval < TimeSpan.FromSeconds(1) || Gen2CheckInterval > TimeSpan.FromHours(1))
            yield return $"{Section}:Gen2CheckInterval must be between 00:00:01 and 01:00:00; got {Gen2CheckInterval}.";
    }
}
