using System.Text;
using Bulwark.Engine.Tokenizers;

namespace Bulwark.Engine.Tests.Tokenizers;

/// <summary>
/// The comparisons with llama.cpp every vocabulary goes through: ids of user text (specials
/// never parsed), of operator text (specials parsed), of invalid UTF-8, and decoding.
/// </summary>
internal static class LlamaCppAgreement
{
    public static void UserTextIdsMatch(LlamaCppVocabulary vocabulary) =>
        AssertNoMismatch(vocabulary, HostileCorpus.Texts, text => Encoding.UTF8.GetBytes(text), parseSpecial: false);

    public static void OperatorTextIdsMatch(LlamaCppVocabulary vocabulary) =>
        AssertNoMismatch(vocabulary, HostileCorpus.Texts, text => Encoding.UTF8.GetBytes(text), parseSpecial: true);

    public static void InvalidUtf8IdsMatch(LlamaCppVocabulary vocabulary)
    {
        AssertNoMismatch(vocabulary, HostileCorpus.InvalidUtf8, bytes => bytes, parseSpecial: false);
        AssertNoMismatch(vocabulary, HostileCorpus.InvalidUtf8, bytes => bytes, parseSpecial: true);
    }

    public static void DecodingMatchesAndRoundTrips(LlamaCppVocabulary vocabulary)
    {
        var mismatches = new List<string>();
        var roundTrips = 0;
        foreach (var text in HostileCorpus.Texts)
        {
            foreach (var parseSpecial in new[] { false, true })
            {
                var ids = vocabulary.Ours.Encode(text, addSpecial: true, parseSpecial);
                foreach (var renderSpecial in new[] { false, true })
                {
                    var expected = vocabulary.JoinPieces(ids, renderSpecial);
                    var detokenized = vocabulary.Detokenize(ids, renderSpecial);
                    if (!vocabulary.CleansSpaces && !detokenized.AsSpan().SequenceEqual(expected))
                        mismatches.Add($"{Show(text)}: llama_detokenize \"{Show(Encoding.UTF8.GetString(detokenized))}\" differs from its joined pieces");
                    var actual = Encoding.UTF8.GetBytes(vocabulary.Ours.Decode(ids, renderSpecial));
                    // Decode returns a string, so invalid UTF-8 the reference passes through is U+FFFD for us.
                    var expectedText = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(expected));
                    if (!expectedText.AsSpan().SequenceEqual(actual))
                        mismatches.Add($"{Show(text)} parse={parseSpecial} render={renderSpecial}: llama.cpp \"{Show(Encoding.UTF8.GetString(expected))}\" ours \"{Show(Encoding.UTF8.GetString(actual))}\"");
                    var streamed = new StringBuilder();
                    var stream = vocabulary.Ours.CreateIncrementalDecoder(renderSpecial);
                    foreach (var id in ids) streamed.Append(stream.Push(id));
                    streamed.Append(stream.Flush());
                    if (streamed.ToString() != Encoding.UTF8.GetString(actual))
                        mismatches.Add($"{Show(text)} render={renderSpecial}: streamed \"{Show(streamed.ToString())}\" differs from Decode");
                    var withoutSpecials = vocabulary.Ours.Encode(text, addSpecial: false, parseSpecial);
                    if (renderSpecial && expected.AsSpan().SequenceEqual(Encoding.UTF8.GetBytes(text)) && ids.SequenceEqual(withoutSpecials))
                    {
                        roundTrips++;
                        Assert.Equal(MlTokenizersAgreementTests.FixLoneSurrogates(text), vocabulary.Ours.Decode(ids, renderSpecial: true));
                    }
                }
                var plain = vocabulary.Ours.Encode(text, addSpecial: false, parseSpecial);
                var reference = vocabulary.JoinPieces(plain, renderSpecial: true);
                if (reference.AsSpan().SequenceEqual(Encoding.UTF8.GetBytes(text)))
                {
                    roundTrips++;
                    // A lone surrogate has no UTF-8 form: both sides see U+FFFD there.
                    if (vocabulary.Ours.Decode(plain, renderSpecial: true) != MlTokenizersAgreementTests.FixLoneSurrogates(text))
                        mismatches.Add($"{Show(text)} parse={parseSpecial}: llama.cpp round-trips, ours gives \"{Show(vocabulary.Ours.Decode(plain, renderSpecial: true))}\"");
                }
            }
        }
        Assert.True(mismatches.Count == 0, $"{vocabulary.Name}: {mismatches.Count} decodings differ:\n{string.Join("\n", mismatches.Take(12))}");
        Assert.True(roundTrips > HostileCorpus.Texts.Count / 2, $"{vocabulary.Name}: only {roundTrips} round trips were checked");
    }

    public static void UserTextNeverBecomesControlTokens(LlamaCppVocabulary vocabulary)
    {
        foreach (var text in HostileCorpus.SpecialSpellings)
        {
            var ours = vocabulary.Ours.Encode(text, addSpecial: false, parseSpecial: false);
            Assert.DoesNotContain(ours, id => vocabulary.Ours.TypeOf(id) == TokenType.Control);
            Assert.Equal(vocabulary.Tokenize(text, addSpecial: false, parseSpecial: false), ours);
        }
    }

    private static void AssertNoMismatch<T>(LlamaCppVocabulary vocabulary, IReadOnlyList<T> inputs, Func<T, byte[]> toBytes, bool parseSpecial)
    {
        var mismatches = new List<string>();
        foreach (var input in inputs)
        {
            var bytes = toBytes(input);
            foreach (var addSpecial in new[] { true, false })
            {
                var expected = vocabulary.Tokenize(bytes, addSpecial, parseSpecial);
                var actual = input is string text
                    ? vocabulary.Ours.Encode(text, addSpecial, parseSpecial)
                    : vocabulary.Ours.EncodeUtf8(bytes, addSpecial, parseSpecial);
                if (!expected.SequenceEqual(actual))
                    mismatches.Add($"{ShowBytes(bytes)} add={addSpecial}: llama.cpp [{string.Join(",", expected)}] ours [{string.Join(",", actual)}]");
            }
        }
        Assert.True(mismatches.Count == 0,
            $"{vocabulary.Name} parseSpecial={parseSpecial}: {mismatches.Count} of {inputs.Count * 2} differ:\n{string.Join("\n", mismatches.Take(12))}");
    }

    private static string Show(string text) => MlTokenizersAgreementTests.Escape(text);

    private static string ShowBytes(byte[] bytes)
    {
        var text = Encoding.UTF8.GetString(bytes);
        return Encoding.UTF8.GetBytes(text).AsSpan().SequenceEqual(bytes) ? Show(text) : "bytes " + Convert.ToHexString(bytes.AsSpan(0, Math.Min(bytes.Length, 40)));
    }
}
