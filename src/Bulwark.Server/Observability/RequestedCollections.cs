namespace Bulwark.Server.Observability;

/// <summary>
/// Full collections the server asked the GC for (<c>Bulwark:Memory:Gen2WhenGrownBy</c>, Hosting's <c>Gen2Collector</c>),
/// process-wide, with their pauses as the GC measured them: <c>bulwark_dotnet_gc_requested_collections_total</c> and
/// <c>bulwark_dotnet_gc_requested_pause_seconds_total</c>.
/// </summary>
public static class RequestedCollections
{
    private static long s_count;
    private static long s_pauseTicks;

    public static long Count => Interlocked.Read(ref s_count);

    public static TimeSpan Pause => TimeSpan.FromTicks(Interlocked.Read(ref s_pauseTicks));

    public static void Add(TimeSpan pause)
    {
        Interlocked.Increment(ref s_count);
        Interlocked.Add(ref s_pauseTicks, pause.Ticks);
    }
}
