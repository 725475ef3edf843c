using System.Text;
using System.Text.Json;
using Bulwark.Engine.Serving.Constraints;
using Bulwark.Engine.Synthesis;
using Bulwark.Engine.Tokenizers;
using Bulwark.Engine.Tokenizers.Loading;

namespace Bulwark.Engine.Tests.Serving.Constraints;

public class TokenMaskTests
{
    private static readonly Lazy<TokenVocabulary> Gpt2 = new(() => TokenVocabulary.From(TokenizerFactory.Create(SyntheticVocabulary.Create(4000)), 4000));

    /// <summary>Byte-fallback style: the 256 single bytes, then random 1–6 byte strings that often split UTF-8 characters, and a few control tokens.</summary>
    private static TokenVocabulary ByteFallback()
    {
        var random = new Random(3);
        var pieces = new List<byte[]?>();
        for (var b = 0; b < 256; b++) pieces.Add([(byte)b]);
        var alphabet = Encoding.UTF8.GetBytes("{}[]\":, \n0123456789.-abcdeftrunlé€😀\\u");
        for (var i = 0; i < 1500; i++)
        {
            var n = random.Next(1, 7);
            var piece = new byte[n];
            for (var j = 0; j < n; j++) piece[j] = alphabet[random.Next(alphabet.Length)];
            pieces.Add(piece);
        }
        pieces.Add(null); // a control token: never allowed
        return new TokenVocabulary([.. pieces]);
    }

    private static IEnumerable<Grammar> Grammars()
    {
        yield return GrammarCompiler.JsonObject();
        yield return GrammarCompiler.Regex("[a-z]{1,5}(\\.[0-9]+)?é?");
        yield return GrammarCompiler.Choice(["true", "false", "truest"]);
        using var doc = JsonDocument.Parse("""
            {"type":"object","properties":{"name":{"type":"string","maxLength":6},"n":{"type":"integer","minimum":-3,"maximum":400},
             "tags":{"type":"array","items":{"enum":["a","b€"]},"maxItems":3},"ok":{"type":["boolean","null"]}},"required":["name","n"]}
            """);
        yield return GrammarCompiler.JsonSchema(doc.RootElement);
    }

    [Fact]
    public void TrieWalkMaskEqualsTheNaivePerTokenCheckOnRandomStates()
    {
        var random = new Random(17);
        foreach (var vocabulary in new[] { Gpt2.Value, ByteFallback() })
            foreach (var grammar in Grammars())
            {
                var constraint = new TokenConstraint(grammar, vocabulary);
                for (var walk = 0; walk < 6; walk++)
                {
                    var state = constraint.Start;
                    for (var step = 0; step < 25 && !state.IsFinal; step++)
                    {
                        var fast = new ulong[vocabulary.MaskWords];
                        var slow = new ulong[vocabulary.MaskWords];
                        var fastCount = constraint.Fill(state, fast);
                        var slowCount = constraint.FillNaive(state, slow);
                        Assert.Equal(slow, fast);
                        Assert.Equal(slowCount, fastCount);
                        Assert.Equal(fast, constraint.MaskOf(state, first: false, out _));
                        if (fastCount == 0) break;
                        var allowed = Enumerable.Range(0, vocabulary.Size).Where(id => TokenConstraint.Allowed(fast, id)).ToList();
                        var token = allowed[random.Next(allowed.Count)];
                        state = constraint.Advance(state, token, first: false);
                        Assert.False(state.IsDead);
                    }
                }
            }
    }

    [Fact]
    public void ControlTokensAreNeverAllowed()
    {
        var tokenizer = TokenizerFactory.Create(SyntheticVocabulary.Create(300));
        var vocabulary = TokenVocabulary.From(tokenizer, 300);
        var constraint = new TokenConstraint(GrammarCompiler.Json(), vocabulary);
        var mask = constraint.MaskOf(constraint.Start, false, out _);
        foreach (var special in SyntheticVocabulary.SpecialTokens)
            Assert.False(TokenConstraint.Allowed(mask, tokenizer.IdOf(special)));
    }

    [Fact]
    public void TheFirstTokenOfASpacePrefixedVocabularyIsMatchedWithoutItsSpace()
    {
        byte[]?[] pieces = [" {"u8.ToArray(), "{"u8.ToArray(), " }"u8.ToArray(), " "u8.ToArray()];
        var constraint = new TokenConstraint(GrammarCompiler.JsonObject(), new TokenVocabulary(pieces, stripsFirstSpace: true));
        var first = constraint.MaskOf(constraint.Start, first: true, out var count);
        Assert.Equal(2, count);
        Assert.True(TokenConstraint.Allowed(first, 0));
        Assert.True(TokenConstraint.Allowed(first, 1));
        var after = constraint.Advance(constraint.Start, 0, first: true);
        Assert.True(constraint.Matcher.Step(after, "}"u8).Accepting);
    }

    [Fact]
    public void AConstraintWhoseMemoGrewPastItsBoundSaysSo()
    {
        byte[]?[] pieces = ["a"u8.ToArray(), "b"u8.ToArray()];
        var constraint = new TokenConstraint(GrammarCompiler.Regex("[ab]{0,100}"), new TokenVocabulary(pieces), maxSharedStates: 50);
        var state = constraint.Start;
        for (var i = 0; i < 50; i++)
        {
            Assert.False(constraint.IsWorn);
            state = constraint.Advance(state, i % 2, first: false);
        }
        Assert.True(constraint.IsWorn);
        Assert.True(state.Accepting);
    }
}
