using System.Buffers;
using System.IO.Pipelines;
using System.Text;

namespace Bulwark.Server.Backends.Upstream;

/// <summary>
/// Reads Server-Sent Events from an upstream's response: the <c>data:</c> lines of each event joined
/// (comments, <c>event:</c>, <c>id:</c> and <c>retry:</c> fields are skipped), one event per call.
/// A line longer than <see cref="MaxLineBytes"/> is a protocol failure, not a reason to buffer without end.
/// </summary>
internal sealed class SseReader(Stream stream) : IAsyncDisposable
{
    public const int MaxLineBytes = 1 << 20;

    private readonly PipeReader _pipe = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 16 * 1024));
    private readonly StringBuilder _data = new();

    /// <summary>The next event's data, or null at the end of the stream.</summary>
    /// <exception cref="InvalidDataException">A line passed <see cref="MaxLineBytes"/>.</exception>
    public async ValueTask<string?> ReadAsync(CancellationToken ct)
    {
        _data.Clear();
        var any = false;
        while (true)
        {
            var result = await _pipe.ReadAsync(ct);
            var buffer = result.Buffer;
            while (TryLine(ref buffer, out var line))
            {
                if (line.Length == 0)
                {
                    if (any)
                    {
                        _pipe.AdvanceTo(buffer.Start);
                        return _data.ToString();
                    }
                    continue;
                }
                var text = Encoding.UTF8.GetString(line);
                if (text.StartsWith("data:", StringComparison.Ordinal))
                {
                    if (any) _data.Append('\n');
                    _data.Append(text.AsSpan(text.Length > 5 && text[5] == ' ' ? 6 : 5));
                    any = true;
                }
            }
            if (buffer.Length > MaxLineBytes) throw new InvalidDataException($"an event line of the upstream's stream passed {MaxLineBytes} bytes");
            _pipe.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted) return any ? _data.ToString() : null;
        }
    }

    /// <summary>One line without its <c>\n</c> (and a trailing <c>\r</c>).</summary>
    private static bool TryLine(ref ReadOnlySequence<byte> buffer, out byte[] line)
    {
        var end = buffer.PositionOf((byte)'\n');
        if (end is null)
        {
            line = [];
            return false;
        }
        var slice = buffer.Slice(0, end.Value);
        if (slice.Length > MaxLineBytes) throw new InvalidDataException($"an event line of the upstream's stream passed {MaxLineBytes} bytes");
        line = slice.ToArray();
        if (line.Length > 0 && line[^1] == '\r') line = line[..^1];
        buffer = buffer.Slice(buffer.GetPosition(1, end.Value));
        return true;
    }

    public ValueTask DisposeAsync() => _pipe.CompleteAsync();
}
