using Bulwark.Server.Observability;
using Bulwark.Server.Hosting;

namespace Bulwark.Server.Tests.Hosting;

/// <summary>glibc's malloc arenas: counted from <c>malloc_info</c>, and capped by <c>mallopt(M_ARENA_MAX)</c>. The suite runs on glibc.</summary>
public sealed class NativeHeapTests
{
    /// <summary>One arena's element as glibc 2.36 writes it.</summary>
    private static string Heap(int nr, long current) => $"""
        <heap nr="{nr}">
        <sizes>
        </sizes>
        <total type="fast" count="0" size="0"/>
        <total type="rest" count="1" size="1000"/>
        <system type="current" size="{current}"/>
        <system type="max" size="{current}"/>
        <aspace type="total" size="{current}"/>
        <aspace type="mprotect" size="{current}"/>
        </heap>

        """;

    private static readonly string TwoArenas = "<malloc version=\"1\">\n" + Heap(0, 135168) + Heap(1, 200000) + """
        <total type="fast" count="0" size="0"/>
        <total type="rest" count="2" size="3000"/>
        <total type="mmap" count="3" size="4096000"/>
        <system type="current" size="335168"/>
        <system type="max" size="435168"/>
        <aspace type="total" size="335168"/>
        <aspace type="mprotect" size="335168"/>
        </malloc>
        """;

    [Fact]
    public void ParseCountsHeapsAndAddsTheTotalsMmapToTheSystemBytes() =>
        Assert.Equal((2, 335168L + 4096000L), NativeHeap.Parse(TwoArenas));

    [Fact]
    public void ReadSeesTheArenasOfThisProcessAndTheBytesMallocHolds()
    {
        Assert.NotNull(NativeHeap.GlibcVersion);
        var (arenas, bytes) = NativeHeap.Read() ?? throw new InvalidOperationException("malloc_info failed");
        Assert.InRange(arenas, 1, 8 * Environment.ProcessorCount + 1);
        Assert.True(bytes > 0);
    }

    [Fact]
    public void LimitAtOrBelowOneIsRefusedBeforeGlibc()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => NativeHeap.LimitArenas(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => NativeHeap.LimitArenas(-1));
    }

    /// <summary>
    /// glibc accepts the cap. Whether it still bites cannot be shown in this process: glibc fixes its limit the first
    /// time it has to choose after 8 arenas exist, which a test host long past start-up has done, and threads reuse the
    /// arenas of threads that ended. <c>MemorySettingsTests</c> shows the cap on a real <c>serve</c>'s arena count.
    /// </summary>
    [Fact]
    public void GlibcAcceptsTheCap()
    {
        var before = NativeHeap.Read()!.Value.Arenas;
        Assert.True(NativeHeap.LimitArenas(Math.Max(before, 8 * Environment.ProcessorCount))); // glibc's own limit: changes nothing for other tests
    }
}
