namespace Bulwark.Engine.Formats;

/// <summary>Text taken from a model file, made safe to put in an error message or a log line.</summary>
internal static class ShownText
{
    /// <summary>
    /// At most <paramref name="max"/> characters (names in a hostile file can be megabytes long)
    /// with control characters escaped, so a message cannot forge log lines.
    /// </summary>
    public static string Of(string text, int max = 120)
    {
        var shown = text.Length <= max ? text : text[..max];
        if (shown.Any(char.IsControl))
            shown = string.Concat(shown.Select(c => char.IsControl(c) ? $"\\u{(int)c:X4}" : c.ToString()));
        return text.Length <= max ? shown : shown + $"…({text.Length} chars)";
    }
}
