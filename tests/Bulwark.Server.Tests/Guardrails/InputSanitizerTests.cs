using System.Text;
using System.Text.RegularExpressions;
using Bulwark.Server.Guardrails.Input;
using CsCheck;

namespace Bulwark.Server.Tests.Guardrails;

public sealed class InputSanitizerTests
{
    // Edge cases weighted up: controls, every line ending, Unicode spaces, surrogate pairs, joiners.
    private static readonly Gen<string> AnyText = Gen.OneOf<string>(
            "a", "Z", "é", "字", "😀", "\u200D", "\u200B", " ", " ", "\t", "\n", "\n", "\r", "\r\n", "\0", "\u0001", "\u001B", "\u007F",
            "\u0085", "\u009F", "\u00A0", "\u2028", "\u3000", "#", "<|im_start|>")
        .Array[0, 120].Select(string.Concat);

    private static readonly Gen<string> OrdinaryText = Gen.OneOf<string>(
            Gen.Char['\u0020', '\u007E'].Select(c => c.ToString()),
            Gen.Char['\u00A1', '\uD7FF'].Select(c => c.ToString()),
            Gen.OneOf<string>("\n", "\t", "😀", "👩\u200D💻", "\u05E9\u05DC\u05D5\u05DD", "\u00A0"))
        .Array[0, 200].Select(string.Concat);

    /// <summary>The slow twin: the rules as four regular-expression passes.</summary>
    private static string Oracle(string text, int maxSpaces, int maxNewlines)
    {
        var s = Regex.Replace(text, "\r\n?", "\n");
        s = Regex.Replace(s, @"[\p{Cc}-[\t\n]]", "");
        s = Regex.Replace(s, $@"[\t\p{{Zs}}\u2028\u2029]{{{maxSpaces + 1},}}", m => m.Value[..maxSpaces]);
        return Regex.Replace(s, $@"\n{{{maxNewlines + 1},}}", m => m.Value[..maxNewlines]);
    }

    [Fact]
    public void SanitizingAgreesWithTheRegexTwinOnArbitraryText()
    {
        var small = new InputSanitizer(maxSpaceRun: 3, maxNewlineRun: 2);
        AnyText.Sample(text => Assert.Equal(Oracle(text, 3, 2), small.Sanitize(text)), iter: 5000);
        AnyText.Sample(text => Assert.Equal(Oracle(text, 256, 32), InputSanitizer.Default.Sanitize(text)), iter: 2000);
    }

    [Fact]
    public void OrdinaryTextComesBackUntouchedAsTheSameInstance()
    {
        OrdinaryText.Sample(text =>
        {
            if (Regex.IsMatch(text, @"[\t\p{Zs}\u2028\u2029]{257,}|\n{33,}")) return; // not ordinary: over a cap
            Assert.Same(text, InputSanitizer.Default.Sanitize(text));
        }, iter: 5000);
    }

    [Fact]
    public void OutputHasNoRemovedCharacterNoCarriageReturnAndNoRunOverTheCaps()
    {
        var small = new InputSanitizer(maxSpaceRun: 3, maxNewlineRun: 2);
        AnyText.Sample(text =>
        {
            var clean = small.Sanitize(text);
            Assert.DoesNotContain(clean, c => InputSanitizer.IsRemoved(c) || c == '\r');
            Assert.DoesNotMatch(@"[\t\p{Zs}\u2028\u2029]{4,}|\n{3,}", clean);
            Assert.Equal(clean, small.Sanitize(clean)); // idempotent
        }, iter: 5000);
    }

    [Theory]
    [InlineData("a\0b", "ab")]
    [InlineData("line1\r\nline2\rline3\n", "line1\nline2\nline3\n")]
    [InlineData("bell\u0007 esc\u001B[31m del\u007F c1\u0085", "bell esc[31m del c1")]
    [InlineData("tab\there", "tab\there")]
    [InlineData("emoji 👩\u200D💻 and zero\u200Bwidth stay", "emoji 👩\u200D💻 and zero\u200Bwidth stay")]
    public void KnownInputs(string input, string expected) => Assert.Equal(expected, InputSanitizer.Default.Sanitize(input));

    [Fact]
    public void RunsAreCappedAtTheLimitNotBelowIt()
    {
        var s = new InputSanitizer(maxSpaceRun: 4, maxNewlineRun: 2);
        Assert.Equal("a    b", s.Sanitize("a    b"));        // at the cap: unchanged
        Assert.Equal("a   b", s.Sanitize("a   b"));          // below
        Assert.Equal("a    b", s.Sanitize("a     b"));       // above: cut to the cap
        Assert.Equal("a\n\nb", s.Sanitize("a\n\n\nb"));
        Assert.Equal("a\n\nb", s.Sanitize("a\r\n\r\n\r\nb"));
        Assert.Equal("a    b", s.Sanitize("a  \0   b"));     // a removed character does not split a run
    }

    [Theory]
    [InlineData(0, 1, "maxSpaceRun")]
    [InlineData(1, 0, "maxNewlineRun")]
    public void CapsBelowOneAreRefusedNamingTheField(int spaces, int newlines, string field)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new InputSanitizer(spaces, newlines));
        Assert.Contains(field, e.Message);
    }

    // AnyText with lone surrogates, and halves of a pair with a removed character between them (they join once it goes).
    private static readonly Gen<string> TextWithSurrogates = Gen.OneOf<string>(
            "a", "é", "字", "😀", " ", "\u3000", "\t", "\n", "\r", "\r\n", "\0", "\u0085", "\uD83D", "\uDE00", "\uDC00", "\uD800\u0001\uDC00")
        .Array[0, 80].Select(string.Concat);

    [Fact]
    public void SanitizedUtf8LengthIsTheUtf8LengthOfTheSanitizedText()
    {
        foreach (var (spaces, newlines) in new[] { (1, 1), (3, 2), (256, 32) })
        {
            var sanitizer = new InputSanitizer(spaces, newlines);
            AnyText.Sample(text => Assert.Equal(Encoding.UTF8.GetByteCount(sanitizer.Sanitize(text)), sanitizer.SanitizedUtf8Length(text)), iter: 2000);
            TextWithSurrogates.Sample(text => Assert.Equal(Encoding.UTF8.GetByteCount(sanitizer.Sanitize(text)), sanitizer.SanitizedUtf8Length(text)), iter: 2000);
        }
    }
}
