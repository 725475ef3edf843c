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
        var runs = new Runs(MaxSpaceRun, MaxNewlineRun);
        foreach (var c in text)
            if (runs.Next(c) is var kept and not Runs.Dropped) output.Append(kept);
        return output.ToString();
    }

    /// <summary>
    /// The UTF-8 length of <see cref="Sanitize"/>'s result (lone surrogates as U+FFFD, as
    /// <see cref="Encoding.UTF8"/> counts them), without building it; the slow twin is
    /// <c>Encoding.UTF8.GetByteCount(Sanitize(text))</c>.
    /// </summary>
    public long SanitizedUtf8Length(ReadOnlySpan<char> text)
    {
        var count = new Utf8Count(MaxSpaceRun, MaxNewlineRun);
        foreach (var c in text) count.Add(c);
        return count.Bytes;
    }

    /// <summary>
    /// The sanitizer one UTF-16 unit at a time: <see cref="Next"/> gives the character to keep, or
    /// <see cref="Dropped"/> (NUL, which is always removed). A <c>\r</c> becomes <c>\n</c> and a
    /// <c>\n</c> right after it is dropped; removed characters do not end a run.
    /// </summary>
    public struct Runs(int maxSpaceRun, int maxNewlineRun)
    {
        public const char Dropped = '\0';

        private int _spaces;
        private int _newlines;
        private bool _afterCarriageReturn;

        public char Next(char c)
        {
            if (_afterCarriageReturn)
            {
                _afterCarriageReturn = false;
                if (c == '\n') return Dropped; // the \n of a \r\n pair
            }
            if (c == '\r')
            {
                _afterCarriageReturn = true;
                c = '\n';
            }
            else if (IsRemoved(c))
            {
                return Dropped; // removed without ending a run: "a \0 b" must not grow a run past the cap
            }
            if (c == '\n')
            {
                _spaces = 0;
                return ++_newlines <= maxNewlineRun ? c : Dropped;
            }
            _newlines = 0;
            if (IsHorizontalSpace(c)) return ++_spaces <= maxSpaceRun ? c : Dropped;
            _spaces = 0;
            return c;
        }
    }

    /// <summary>
    /// The UTF-8 bytes of the sanitized text, fed one UTF-16 unit at a time (from a string, or from a JSON
    /// string's escapes without making the string): a surrogate pair is 4 bytes, a lone surrogate 3 (U+FFFD).
    /// </summary>
    public struct Utf8Count(int maxSpaceRun, int maxNewlineRun)
    {
        private Runs _runs = new(maxSpaceRun, maxNewlineRun);
        private long _bytes;
        private bool _pendingHigh;

        /// <summary>The bytes so far (a high surrogate waiting for its low half counted as a lone one).</summary>
        public readonly long Bytes => _bytes + (_pendingHigh ? 3 : 0);

        public void Add(char c)
        {
            var kept = _runs.Next(c);
            if (kept == Runs.Dropped) return;
            if (_pendingHigh)
            {
                _pendingHigh = false;
                if (char.IsLowSurrogate(kept))
                {
                    _bytes += 4;
                    return;
                }
                _bytes += 3;
            }
            if (char.IsHighSurrogate(kept)) _pendingHigh = true;
            else _bytes += kept < 0x80 ? 1 : kept < 0x800 ? 2 : 3;
        }
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
