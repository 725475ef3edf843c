using System.Buffers;

namespace Bulwark.Server.Backends.Upstream;

/// <summary>
/// Reads an upstream's whole (not streamed) response into one pooled buffer: sized from <c>Content-Length</c>
/// when the upstream sends one (up to <see cref="MaxFirstBuffer"/>, so an announcement alone never makes the
/// gateway reserve much), grown by doubling when more comes, never past the response size limit. The usual
/// answer is one read into one buffer, with no copy and nothing left for the garbage collector.
/// </summary>
internal static class WholeBody
{
    /// <summary>The largest buffer taken on the strength of a <c>Content-Length</c> alone.</summary>
    public const int MaxFirstBuffer = 1 << 20;

    private const int Smallest = 256;

    /// <returns>A buffer from <see cref="ArrayPool{T}.Shared"/> holding the body in its first <c>Length</c> bytes; give it back with <see cref="Return"/>.</returns>
    /// <exception cref="UpstreamResponseTooLargeException">More than <paramref name="limit"/> bytes came.</exception>
    public static async ValueTask<(byte[] Buffer, int Length)> ReadAsync(Stream body, long? announced, long limit, CancellationToken ct)
    {
        // One byte more than announced, so the end is seen without growing.
        var first = Math.Min(Math.Min(limit + 1, MaxFirstBuffer), Math.Max(Smallest, (announced ?? 4096) + 1));
        var buffer = ArrayPool<byte>.Shared.Rent((int)first);
        var length = 0;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    var size = Math.Min(Math.Min(limit + 1, 2L * buffer.Length), Array.MaxLength);
                    if (size <= length) throw new UpstreamResponseTooLargeException(length);
                    var larger = ArrayPool<byte>.Shared.Rent((int)size);
                    buffer.AsSpan(0, length).CopyTo(larger);
                    Return(buffer, length);
                    buffer = larger;
                }
                var n = await body.ReadAsync(buffer.AsMemory(length), ct);
                if (n == 0) return (buffer, length);
                length += n;
                if (length > limit) throw new UpstreamResponseTooLargeException(limit);
            }
        }
        catch
        {
            Return(buffer, length);
            throw;
        }
    }

    /// <summary>Gives a body buffer back to the pool cleared: no generated text is left behind in pooled memory.</summary>
    public static void Return(byte[] buffer, int length)
    {
        buffer.AsSpan(0, Math.Min(length, buffer.Length)).Clear();
        ArrayPool<byte>.Shared.Return(buffer);
    }
}
