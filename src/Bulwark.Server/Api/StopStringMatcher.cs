namespace Bulwark.Server.Api;

/// <summary>
/// Finds stop strings in streamed text. Text that could still turn out to be the start of a
/// stop string is held back until it is known not to be, so a client never receives part of a
/// stop string — the same guarantee OpenAI gives. One instance per choice; not thread-safe.
/// </summary>
public sealed class StopStringMatcher(IReadOnlyList<string> stops)
{
    private readonly System.Text.StringBuilder _held = new();

    public bool Stopped { get; private set; }

    /// <summary>Adds generated text; returns what may be shown now. After a stop, everything from the stop string on is dropped.</summary>
    public string Push(string text)
    {
        if (Stopped) return "";
        if (stops.Count == 0) return text;
        _held.Append(text);
        var held = _held.ToString();
        var cut = -1;
        foreach (var stop in stops)
        {
            var at = held.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (cut < 0 || at < cut)) cut = at;
        }
        if (cut >= 0)
        {
            Stopped = true;
            _held.Clear();
            return held[..cut];
        }
        var keep = LongestStopPrefixAtEnd(held);
        _held.Clear().Append(held, held.Length - keep, keep);
        return held[..^keep];
    }

    /// <summary>At the end of generation nothing more can complete a stop string: release what was held.</summary>
    public string Flush()
    {
        var rest = _held.ToString();
        _held.Clear();
        return Stopped ? "" : rest;
    }

    private int LongestStopPrefixAtEnd(string held)
    {
        var longest = 0;
        foreach (var stop in stops)
        {
            for (var length = Math.Min(stop.Length - 1, held.Length); length > longest; length--)
            {
                if (held.AsSpan(held.Length - length).SequenceEqual(stop.AsSpan(0, length)))
                {
                    longest = length;
                    break;
                }
            }
        }
        return longest;
    }
}
