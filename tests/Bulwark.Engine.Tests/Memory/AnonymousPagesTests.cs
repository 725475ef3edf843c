using System.Runtime.InteropServices;
using Bulwark.Engine.Memory;

namespace Bulwark.Engine.Tests.Memory;

public unsafe partial class AnonymousPagesTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(AnonymousPages.MinimumBytes - 1)]
    [InlineData(AnonymousPages.MinimumBytes)]
    [InlineData(AnonymousPages.MinimumBytes + 1)]
    [InlineData(5L << 20)]
    public void BuffersAreZeroedWritableAndAligned(long bytes)
    {
        var p = (byte*)AnonymousPages.Allocate(bytes);
        try
        {
            Assert.Equal(0, (long)p % 64);
            for (long i = 0; i < bytes; i += 997) Assert.Equal(0, p[i]);
            Assert.Equal(0, p[bytes - 1]);
            p[0] = 1;
            p[bytes - 1] = 2;
            Assert.Equal(2, p[bytes - 1]);
        }
        finally
        {
            AnonymousPages.Free(p, bytes);
        }
    }

    [Fact]
    public void TheLimitSeparatesTheAllocatorFromMappedPages()
    {
        Assert.False(AnonymousPages.Serves(AnonymousPages.MinimumBytes - 1));
        Assert.Equal(OperatingSystem.IsLinux(), AnonymousPages.Serves(AnonymousPages.MinimumBytes));
    }

    [Fact]
    public void ALargeBufferIsResidentOnlyWhereWritten()
    {
        if (!OperatingSystem.IsLinux()) return;
        const long bytes = 16L << 20;
        var page = Environment.SystemPageSize;
        using var buffer = new NativeBuffer(bytes / sizeof(float));
        Assert.Equal(0, ResidentPages(buffer.Pointer, bytes));
        buffer.Span[0] = 1;
        buffer.Span[(int)(bytes / sizeof(float)) - 1] = 1;
        // Two pages written (two huge pages where transparent huge pages are always on): far from all 4096.
        var resident = ResidentPages(buffer.Pointer, bytes);
        Assert.InRange(resident, 2, bytes / page / 4);
    }

    [Fact]
    public void NonPositiveSizesAreRefused() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => AnonymousPages.Allocate(0));

    private static long ResidentPages(void* start, long bytes)
    {
        var page = Environment.SystemPageSize;
        var pages = (bytes + page - 1) / page;
        var vector = new byte[pages];
        fixed (byte* v = vector)
            Assert.Equal(0, Mincore(start, (nuint)bytes, v));
        return vector.Count(b => (b & 1) != 0);
    }

    [LibraryImport("libc", EntryPoint = "mincore")]
    private static partial int Mincore(void* address, nuint length, byte* vector);
}
