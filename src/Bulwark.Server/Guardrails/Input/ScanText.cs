using System.Buffers;
using System.Globalization;
using System.Text;

namespace Bulwark.Server.Guardrails.Input;

/// <summary>
/// A text as the injection scanner sees it. <see cref="Normalized"/> undoes the cheap evasions
/// before any rule or n-gram looks at it: invisible formatting characters are dropped
/// ("ig&#x200B;nore" reads "ignore"), full-width and styled letters become plain ones,
/// everything is lower-cased (invariant culture) and every whitespace run becomes one space (one
/// line feed when it holds a line break).
/// Characters from the Unicode tag block (U+E0020..U+E007E) mirror ASCII and are invisible, so a
/// run of them outside an emoji flag sequence is decoded into <see cref="SmuggledAscii"/>.
/// </summary>
public sealed class ScanText
{
    private ScanText(string normalized, int invisible, int bidiOverrides, string smuggledAscii)
    {
        Normalized = normalized;
        InvisibleCount = invisible;
        BidiOverrideCount = bidiOverrides;
        SmuggledAscii = smuggledAscii;
    }

    public string Normalized { get; }

    /// <summary>Zero-width and other invisible format characters, tag characters excluded.</summary>
    public int InvisibleCount { get; }

    /// <summary>Bidirectional embedding/override/isolate controls (U+202A..U+202E, U+2066..U+2069).</summary>
    public int BidiOverrideCount { get; }

    /// <summary>ASCII spelled with tag characters outside emoji flag sequences; empty when none.</summary>
    public string SmuggledAscii { get; }

    /// <remarks>
    /// Perf: the visible characters and the folded text are written into rented buffers, so a request's
    /// text is copied once into <see cref="Normalized"/> rather than through two builders and an interim
    /// string (together ~15 % of the bytes a soak request allocated).
    /// </remarks>
    public static ScanText From(string text)
    {
        var visible = ArrayPool<char>.Shared.Rent(Math.Max(1, text.Length));
        try
        {
            var length = 0;
            StringBuilder? smuggled = null;
            int invisible = 0, bidi = 0;
            var inFlag = false; // after U+1F3F4 (black flag) tag characters spell a subdivision flag
            for (var i = 0; i < text.Length; i++)
            {
                var c = text[i];
                if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                {
                    var cp = char.ConvertToUtf32(c, text[i + 1]);
                    if (cp is >= 0xE0000 and <= 0xE007F)
                    {
                        i++;
                        if (cp == 0xE007F) inFlag = false; // CANCEL TAG ends a flag sequence
                        else if (!inFlag && cp is >= 0xE0020 and <= 0xE007E) (smuggled ??= new StringBuilder()).Append((char)(cp - 0xE0000));
                        continue;
                    }
                    inFlag = cp == 0x1F3F4;
                    visible[length++] = c;
                    visible[length++] = text[i + 1];
                    i++;
                    continue;
                }
                inFlag = false;
                if (IsBidiControl(c))
                {
                    bidi++;
                    continue;
                }
                if (IsInvisible(c))
                {
                    invisible++;
                    continue;
                }
                visible[length++] = c;
            }
            return new ScanText(Fold(visible.AsSpan(0, length)), invisible, bidi, smuggled?.ToString() ?? "");
        }
        finally
        {
            ArrayPool<char>.Shared.Return(visible);
        }
    }

    /// <summary>
    /// Compatibility folding (<see cref="FoldCompatibility"/>), lower case, trimmed; a whitespace
    /// run becomes one line feed when it holds a line break (lines are where segments begin, see
    /// <see cref="Segments"/>) and one space otherwise.
    /// </summary>
    public static string Fold(string text) => Fold(text.AsSpan());

    /// <inheritdoc cref="Fold(string)"/>
    public static string Fold(ReadOnlySpan<char> text)
    {
        // Folding never lengthens a text: a whitespace run becomes at most one character, a pair at most two.
        var output = ArrayPool<char>.Shared.Rent(Math.Max(1, text.Length));
        try
        {
            var length = 0;
            var space = '\0';
            for (var i = 0; i < text.Length; i++)
            {
                var c = text[i];
                if (char.IsWhiteSpace(c))
                {
                    if (length > 0 && space != '\n') space = c is '\n' or '\r' or '\u2028' or '\u2029' ? '\n' : ' ';
                    continue;
                }
                if (space != '\0') output[length++] = space;
                space = '\0';
                if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                {
                    var folded = FoldCompatibility(char.ConvertToUtf32(c, text[i + 1]));
                    if (folded >= 0)
                    {
                        output[length++] = char.ToLowerInvariant((char)folded);
                        i++;
                        continue;
                    }
                    output[length++] = c;
                    output[length++] = text[++i];
                    continue;
                }
                var plain = FoldCompatibility(c);
                output[length++] = char.ToLowerInvariant(plain >= 0 ? (char)plain : c);
            }
            return new string(output, 0, length);
        }
        finally
        {
            ArrayPool<char>.Shared.Return(output);
        }
    }

    /// <summary>
    /// The ASCII letter or digit a styled variant stands for, or -1: full-width forms
    /// (U+FF01..U+FF5E), circled letters (U+24B6..U+24E9) and the mathematical alphanumeric
    /// symbols (bold, italic, script, fraktur, double-struck, sans-serif, monospace: U+1D400..U+1D7FF).
    /// These are the NFKC mappings attackers use to dodge word lists; NFKC itself is not
    /// available because Bulwark runs with invariant globalization (no ICU tables).
    /// </summary>
    public static int FoldCompatibility(int cp) => cp switch
    {
        >= 0xFF01 and <= 0xFF5E => cp - 0xFF01 + 0x21,
        >= 0x24B6 and <= 0x24CF => 'A' + cp - 0x24B6,
        >= 0x24D0 and <= 0x24E9 => 'a' + cp - 0x24D0,
        >= 0x1D400 and <= 0x1D6A3 => (cp - 0x1D400) % 52 is var k && k < 26 ? 'A' + k : 'a' + k - 26,
        >= 0x1D7CE and <= 0x1D7FF => '0' + (cp - 0x1D7CE) % 10,
        _ => -1,
    };

    /// <summary>Most segments a text is cut into; the rest stays in the last one.</summary>
    public const int MaxSegments = 128;

    /// <summary>Shortest segment on its own; shorter pieces are joined to the next.</summary>
    public const int MinSegmentLength = 24;

    /// <summary>
    /// The text cut into lines and sentences (<c>. ! ?</c> followed by a space), short pieces
    /// joined to the next one. An instruction planted in a document is usually a sentence or line
    /// of its own; scoring segments lets it stand out from the document around it.
    /// </summary>
    public static List<string> Segments(string normalized)
    {
        var segments = new List<string>();
        var start = 0;
        for (var i = 0; i < normalized.Length && segments.Count < MaxSegments - 1; i++)
        {
            var c = normalized[i];
            var end = c == '\n' ? i : c is '.' or '!' or '?' && i + 1 < normalized.Length && normalized[i + 1] == ' ' ? i + 1 : -1;
            if (end < 0 || end - start < MinSegmentLength) continue;
            segments.Add(normalized[start..end].Trim());
            start = end + 1;
        }
        var rest = normalized[Math.Min(start, normalized.Length)..].Trim();
        if (rest.Length > 0)
        {
            if (rest.Length < MinSegmentLength && segments.Count > 0) segments[^1] += " " + rest;
            else segments.Add(rest);
        }
        return segments;
    }

    public static bool IsBidiControl(char c) => c is >= '\u202A' and <= '\u202E' or >= '\u2066' and <= '\u2069';

    /// <summary>
    /// Format characters that render as nothing. The zero-width joiner (U+200D) is left out: emoji
    /// sequences need it; U+FE0F/U+FE0E are variation selectors (category Mn), not counted either.
    /// </summary>
    public static bool IsInvisible(char c) =>
        c is '\u200B' or '\u200C' or '\u2060' or '\u2061' or '\u2062' or '\u2063' or '\u2064' or '\uFEFF' or '\u180E' or '\u00AD'
            or '\u034F' or '\u115F' or '\u1160' or '\u3164' or '\uFFA0' or '\u200E' or '\u200F';
}
