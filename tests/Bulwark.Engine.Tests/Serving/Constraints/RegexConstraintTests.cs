using System.Diagnostics;
using System.Text;
using Bulwark.Engine.Serving.Constraints;
using NetRegex = System.Text.RegularExpressions.Regex;
using RegexOptions = System.Text.RegularExpressions.RegexOptions;

namespace Bulwark.Engine.Tests.Serving.Constraints;

public class RegexConstraintTests
{
    private static readonly string[] Patterns =
    [
        "[a-c]{2,4}", "(ab|a)*c?", "\\d+(\\.\\d{1,2})?", "[^a]b+", "x|y|zz", "(?:[0-9a-f]{2}-){2}[0-9a-f]{2}", "[\\w.]+@[a-z]+\\.(com|org)",
        "a.c", "é+ü?", "[α-ω]{1,3}", "\\s*\\S", "(a|b)*abb", "[\\u0041-\\u0043]\\x44",
    ];

    /// <summary>Strings over an alphabet the patterns use, so matches and near misses both occur.</summary>
    private static string RandomString(Random r)
    {
        const string alphabet = "abcxyz019.-@ \n_éüαβω\u0041D";
        var n = r.Next(0, 8);
        var s = new StringBuilder();
        for (var i = 0; i < n; i++) s.Append(alphabet[r.Next(alphabet.Length)]);
        return s.ToString();
    }

    [Fact]
    public void FullMatchAgreesWithDotNetRegexOnRandomStrings()
    {
        var random = new Random(42);
        foreach (var pattern in Patterns)
        {
            var g = GrammarCompiler.Regex(pattern);
            var oracle = new NetRegex("^(?:" + pattern + ")\\z", RegexOptions.ECMAScript);
            for (var i = 0; i < 400; i++)
            {
                var s = RandomString(random);
                Assert.True(oracle.IsMatch(s) == g.Matches(Encoding.UTF8.GetBytes(s)), $"/{pattern}/ on '{s}'");
            }
        }
    }

    [Fact]
    public void APatternThatWouldBlowUpIsRefusedInBoundedTime()
    {
        var watch = Stopwatch.StartNew();
        var e = Assert.Throws<ConstraintException>(() => GrammarCompiler.Regex("(a|b)*a(a|b){20}"));
        Assert.Contains("2000", e.Message);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), watch.Elapsed.ToString());
    }

    [Theory]
    [InlineData(999, false)]
    [InlineData(1000, false)]
    [InlineData(1001, true)]
    public void RegexLengthLimit(int length, bool refused)
    {
        var pattern = new string('a', length);
        if (refused) Assert.Throws<ConstraintException>(() => GrammarCompiler.Regex(pattern));
        else Assert.True(GrammarCompiler.Regex(pattern).Matches(Encoding.ASCII.GetBytes(pattern)));
    }

    [Fact]
    public void DfaStateLimitRefusesOneStateShortAndAcceptsAtAndAbove()
    {
        // (a|b)*a(a|b){9} needs at least 2^10 states: find the exact count, then hold the cap at, below and above it.
        const string pattern = "(a|b)*a(a|b){9}";
        var needed = 1 << 10;
        while (!Compiles(needed)) needed++;
        Assert.InRange(needed, 1 << 10, (1 << 10) + 4);
        Assert.False(Compiles(needed - 1));
        Assert.True(Compiles(needed + 1));

        static bool Compiles(int cap)
        {
            try
            {
                GrammarCompiler.Regex(pattern, new ConstraintLimits { MaxDfaStates = cap });
                return true;
            }
            catch (ConstraintException)
            {
                return false;
            }
        }
    }

    [Theory]
    [InlineData(255, false)]
    [InlineData(256, false)]
    [InlineData(257, true)]
    public void ChoiceCountLimit(int count, bool refused)
    {
        var choices = Enumerable.Range(0, count).Select(i => "c" + i).ToList();
        if (refused) Assert.Throws<ConstraintException>(() => GrammarCompiler.Choice(choices));
        else GrammarCompiler.Choice(choices);
    }

    [Theory]
    [InlineData(999, false)]
    [InlineData(1000, false)]
    [InlineData(1001, true)]
    public void ChoiceLengthLimit(int length, bool refused)
    {
        string[] choices = [new string('x', length)];
        if (refused) Assert.Throws<ConstraintException>(() => GrammarCompiler.Choice(choices));
        else GrammarCompiler.Choice(choices);
    }
}
