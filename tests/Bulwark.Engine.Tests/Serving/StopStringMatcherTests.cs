using Bulwark.Engine.Serving.Sampling;

namespace Bulwark.Engine.Tests.Serving;

public class StopStringMatcherTests
{
    private static (string Released, bool Stopped) Feed(string[] stops, params string[] pieces)
    {
        var matcher = new StopStringMatcher(stops);
        var released = "";
        foreach (var piece in pieces)
        {
            released += matcher.Push(piece);
            if (matcher.Stopped)
                return (released, true);
        }
        return (released + matcher.Flush(), false);
    }

    [Fact]
    public void StopStringSplitAcrossTokensIsCaughtAndNotEmitted() =>
        Assert.Equal(("Hello ", true), Feed(["</end>"], "Hel", "lo <", "/e", "nd", "> after"));

    [Fact]
    public void TextBeforeTheStopStringInTheSamePieceIsReleased() =>
        Assert.Equal(("abc", true), Feed(["STOP"], "abcSTOPdef"));

    [Fact]
    public void APartialMatchThatBreaksOffIsReleased() =>
        Assert.Equal(("a </en b", false), Feed(["</end>"], "a </", "en", " b"));

    [Fact]
    public void HeldBackTextIsReleasedAtTheEnd()
    {
        var matcher = new StopStringMatcher(["###"]);
        Assert.Equal("x", matcher.Push("x##"));
        Assert.Equal("##", matcher.Flush());
    }

    [Fact]
    public void TheEarliestOfSeveralStopStringsWins() =>
        Assert.Equal(("1 ", true), Feed(["three", "two"], "1 tw", "o three"));

    [Fact]
    public void OverlappingPrefixesAreHeldUntilDecided() =>
        Assert.Equal(("a", true), Feed(["aab"], "a", "a", "a", "b"));

    [Fact]
    public void EmptyStopStringIsRejected() => Assert.Throws<ArgumentException>(() => new StopStringMatcher([""]));
}
