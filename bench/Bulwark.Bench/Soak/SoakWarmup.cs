namespace Bulwark.Bench.Soak;

/// <summary>
/// When a soak's verdict window opens, unless <c>--warmup</c> fixes it: at the first sample taken
/// after both
/// <list type="number">
/// <item>every KV block has been handed out at least once (<c>bulwark_kv_blocks_touched</c> equals
/// <c>bulwark_kv_blocks</c>): KV pages are resident from their first write, so until then RSS grows
/// with the cache, by design and by up to <c>--kv-cache-memory</c>; and</item>
/// <item>a gen2 collection finished after the sample that first saw (1): the GC has then collected its
/// whole heap once with the server at its working size, so the heap's top is set by the load and not
/// by what start-up left behind — or <see cref="MaxGen2Wait"/> passed since that sample without one:
/// the GC's configuration (workstation, non-concurrent, <c>ConserveMemory</c>) can go half an hour
/// without a gen2 under this load, and what the heap does meanwhile is the server's to answer for.</item>
/// </list>
/// Null when that never happened within the soak (no verdict then).
/// </summary>
internal static class SoakWarmup
{
    /// <summary>How long after the KV cache is fully used warm-up waits for a gen2 collection at most.</summary>
    public const double MaxGen2Wait = 300;

    public static double? End(IReadOnlyList<SoakSample> samples)
    {
        (long Gen2, double Seconds)? full = null;
        foreach (var (seconds, r, _) in samples)
        {
            if (seconds <= 0) continue; // the idle reading before the load
            if (full is not { } f)
            {
                if (r.KvBlocks > 0 && r.KvBlocksTouched >= r.KvBlocks) full = (r.Gen2, seconds);
            }
            else if (r.Gen2 > f.Gen2 || seconds - f.Seconds >= MaxGen2Wait) return seconds;
        }
        return null;
    }
}
