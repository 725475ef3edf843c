using Bulwark.Engine.Tokenizers;

namespace Bulwark.Engine.Tests.Tokenizers;

/// <summary>
/// Byte-level BPE over the GPT-2, cl100k and o200k vocabularies against Microsoft.ML.Tokenizers
/// (a separate tiktoken implementation) on the hostile corpus.
/// </summary>
public sealed class MlTokenizersAgreementTests
{
    [Theory]
    [MemberData(nameof(TiktokenVocabularies.Names), MemberType = typeof(TiktokenVocabularies))]
    public void EncodingMatchesMicrosoftMlTokenizersOnTheHostileCorpus(string name)
    {
        var vocabulary = TiktokenVocabularies.Get(name);
        var mismatches = new List<string>();
        foreach (var text in HostileCorpus.Texts)
        {
            // Microsoft.ML.Tokenizers always treats special-token spellings as specials, which
            // is our parseSpecial: true (operator text).
            var expected = vocabulary.Reference.EncodeToIds(FixLoneSurrogates(text));
            var actual = vocabulary.Ours.Encode(text, addSpecial: false, parseSpecial: true);
            if (!expected.SequenceEqual(actual))
                mismatches.Add($"{Escape(text)}: expected [{string.Join(",", expected)}] got [{string.Join(",", actual)}]");
        }
        Assert.True(mismatches.Count == 0, $"{mismatches.Count} of {HostileCorpus.Texts.Count} differ:\n{string.Join("\n", mismatches.Take(10))}");
    }

    [Theory]
    [MemberData(nameof(TiktokenVocabularies.Names), MemberType = typeof(TiktokenVocabularies))]
    public void DecodingEncodedTextGivesTheTextBack(string name)
    {
        var vocabulary = TiktokenVocabularies.Get(name);
        foreach (var text in HostileCorpus.Texts)
        {
            var ids = vocabulary.Ours.Encode(text, addSpecial: false, parseSpecial: true);
            var expected = vocabulary.Reference.Decode(ids);
            Assert.Equal(expected, vocabulary.Ours.Decode(ids, renderSpecial: true));
            Assert.Equal(FixLoneSurrogates(text), vocabulary.Ours.Decode(ids, renderSpecial: true));
        }
    }

    [Theory]
    [MemberData(nameof(TiktokenVocabularies.Names), MemberType = typeof(TiktokenVocabularies))]
    public void UserTextThatSpellsSpecialTokensNeverBecomesControlTokens(string name)
    {
        var tokenizer = TiktokenVocabularies.Get(name).Ours;
        foreach (var text in HostileCorpus.SpecialSpellings)
        {
            var ids = tokenizer.Encode(text, addSpecial: false);
            Assert.DoesNotContain(ids, id => tokenizer.TypeOf(id) == TokenType.Control);
            Assert.Equal(text, tokenizer.Decode(ids));
        }
        var endOfText = tokenizer.IdOf("<|endoftext|>");
        Assert.Equal([endOfText], tokenizer.Encode("<|endoftext|>", addSpecial: false, parseSpecial: true));
    }

    internal static string FixLoneSurrogates(string text) => System.Text.Encoding.UTF8.GetString(System.Text.Encoding.UTF8.GetBytes(text));

    internal static string Escape(string text) =>
        string.Concat(text.Take(80).Select(c => c < 0x20 || c is >= '\u007F' and <= '\u00A0' || char.IsSurrogate(c) ? $"\\u{(int)c:X4}" : c.ToString()));
}
