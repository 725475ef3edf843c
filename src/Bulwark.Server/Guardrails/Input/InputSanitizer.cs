using System.Text;

namespace Bulwark.Server.Guardrails.Input;

/// <summary>
/// The first half of the input guard: makes user text safe to template without changing what a
/// user meant. It removes control characters (Unicode category Cc: C0, DEL and C1) other than
/// tab, line feed and carriage return, turns <c>\r\n</c> and lone <c>\r</c> into <c>\n</c>, and
/// shortens runs of horizontal whitespace longer than <see cref="MaxSpaceRun"/> and runs of line
/// breaks longer than <see cref="MaxNewlineRun"/> to those lengths. Text with none of these (every
/// printable character, including emoji, joiners and right-to-left text) comes back as the same
/// string instance. Invisible formatting characters (zero-width, tag characters) are left in place
/// on purpose: they are evidence for the <see cref="InjectionScanner"/>, and some are legitimate
/// (emoji sequences).
/// </summary>
public sealed class InputSanitizer(int maxSpaceRun = InputSanitizer.DefaultMaxSpaceRun, int maxNewlineRun = InputSanitizer.DefaultMaxNewlineRun)
{
    /// <summary>Deep code indentation stays below this; padding attacks do not.</summary>
    public const int DefaultMaxSpaceRun = 256;

    public const int DefaultMaxNewlineRun = 32;

    public static InputSanitizer Default { get; } = new();

    public int MaxSpaceRun { get; } = maxSpaceRun >= 1 ? maxSpaceRun
        : throw new ArgumentOutOfRangeException(nameof(maxSpaceRun), maxSpaceRun, $"maxSpaceRun must be at least 1; got {maxSpaceRun}");

    public int MaxNewlineRun { get; } = maxNewlineRun >= 1 ? maxNewlineRun
        : throw new ArgumentOutOfRangeException(nameof(maxNewlineRun), maxNewlineRun, $"maxNewlineRun must be at least 1; got {maxNewlineRun}");

    /// <summary>Whether <paramref name="c"/> is one of the characters the sanitizer removes.</summary>
    public static bool IsRemoved(char c) => char.IsControl(c) && c is not ('\t' or '\n' or '\r');

    /// <summary>Horizontal whitespace whose runs are capped (space, tab and the Unicode space separators).</summary>
    public static bool IsHorizontalSpace(char c) => c == '\t' || (c != '\n' && c != '\r' && char.IsWhiteSpace(c) && !char.IsControl(c));

    /// <summary>The sanitized text; the same instance when nothing needed changing.</summary>
    public string Sanitize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (!NeedsChange(text)) return text; // Perf: the common case allocates nothing.
        var output = new StringBuilder(text.Length);
        int spaces = 0, newlines = 0;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c == '\r')
            {
                if (i + 1 < text.Length && text[i + 1] == '\n') i++;
                c = '\n';
            }
            else if (IsRemoved(c))
            {
                continue; // removed without ending a run: "a \0 b" must not grow a run past the cap
            }
            if (c == '\n')
            {
                spaces = 0;
                if (++newlines <= MaxNewlineRun) output.Append(c);
                continue;
            }
            newlines = 0;
            if (IsHorizontalSpace(c))
            {
                if (++spaces <= MaxSpaceRun) output.Append(c);
                continue;
            }
            spaces = 0;
            output.Append(c);
        }
        return output.ToString();
    }

    private bool NeedsChange(string text)
    {
        int spaces = 0, newlines = 0;
        foreach (var c in text)
        {
            if (c == '\r' || IsRemoved(c)) return true;
            if (c == '\n')
            {
                spaces = 0;
                if (++newlines > MaxNewlineRun) return true;
            }
            else if (IsHorizontalSpace(c))
            {
                newlines = 0;
                if (++spaces > MaxSpaceRun) return true;
            }
            else
            {
                spaces = newlines = 0;
            }
        }
        return false;
    }
}
