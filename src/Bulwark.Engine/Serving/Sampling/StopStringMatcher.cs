using System.Text;

namespace Bulwark.Engine.Serving.Sampling;

/// <summary>
/// Finds stop strings in generated text that arrives piece by piece, so a stop string split
/// across several tokens is still caught. Text that could still become the start of a stop
/// string is held back; nothing of a stop string is ever released.
/// </summary>
public sealed class StopStringMatcher
{
    private readonly IReadOnlyList<string> _stops;
    private readonly StringBuilder _pending = new();

    public StopStringMatcher(IReadOnlyList<string> stops)
    {
        foreach (var s in stops)
            if (string.IsNullOrEmpty(s))
                throw new ArgumentException("stop strings must not be empty", nameof(stops));
        _stops = stops;
    }

    public bool Stopped { get; private set; }

    /// <summary>Adds a piece; returns the text now safe to release (empty while a stop string may be forming).</summary>
    public string Push(string piece)
    {
        if (Stopped)
            return string.Empty;
        _pending.Append(piece);
        var text = _pending.ToString();
        var earliest = -1;
        foreach (var stop in _stops)
        {
            var at = text.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (earliest < 0 || at < earliest))
                earliest = at;
        }
        if (earliest >= 0)
        {
            Stopped = true;
            _pending.Clear();
            return text[..earliest];
        }
        var hold = LongestSuffixThatStartsAStop(text);
        _pending.Clear().Append(text, text.Length - hold, hold);
        return text[..^hold];
    }

    /// <summary>Releases what was held back when generation ends for another reason.</summary>
    public string Flush()
    {
        var rest = Stopped ? string.Empty : _pending.ToString();
        _pending.Clear();
        return rest;
    }

    private int LongestSuffixThatStartsAStop(string text)
    {
        var longest = 0;
        foreach (var stop in _stops)
        {
            for (var len = Math.Min(stop.Length - 1, text.Length); len > longest; len--)
            {
                if (text.AsSpan(text.Length - len).SequenceEqual(stop.AsSpan(0, len)))
                {
                    longest = len;
                    break;
                }
            }
        }
        return longest;
    }
}
