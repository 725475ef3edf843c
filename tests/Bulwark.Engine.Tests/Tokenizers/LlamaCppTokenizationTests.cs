using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Tokenizers;

/// <summary>
/// Byte-level BPE (GPT-2, cl100k, o200k) against llama.cpp 0.30 (LLamaSharp) on the hostile
/// corpus: identical ids for user text, operator text and invalid UTF-8, identical decoding.
/// </summary>
public sealed class LlamaCppByteLevelTests(LlamaCppVocabularies vocabularies) : IClassFixture<LlamaCppVocabularies>
{
    [Theory]
    [MemberData(nameof(TiktokenVocabularies.Names), MemberType = typeof(TiktokenVocabularies))]
    public void UserTextGivesTheIdsLlamaCppGives(string name) => LlamaCppAgreement.UserTextIdsMatch(vocabularies.Get(name));

    [Theory]
    [MemberData(nameof(TiktokenVocabularies.Names), MemberType = typeof(TiktokenVocabularies))]
    public void OperatorTextWithSpecialsGivesTheIdsLlamaCppGives(string name) => LlamaCppAgreement.OperatorTextIdsMatch(vocabularies.Get(name));

    [Theory]
    [MemberData(nameof(TiktokenVocabularies.Names), MemberType = typeof(TiktokenVocabularies))]
    public void InvalidUtf8GivesTheIdsLlamaCppGives(string name) => LlamaCppAgreement.InvalidUtf8IdsMatch(vocabularies.Get(name));

    [Theory]
    [MemberData(nameof(TiktokenVocabularies.Names), MemberType = typeof(TiktokenVocabularies))]
    public void DecodingMatchesLlamaCppAndRoundTrips(string name) => LlamaCppAgreement.DecodingMatchesAndRoundTrips(vocabularies.Get(name));

    [Theory]
    [MemberData(nameof(TiktokenVocabularies.Names), MemberType = typeof(TiktokenVocabularies))]
    public void UserTextSpellingSpecialTokensStaysText(string name) => LlamaCppAgreement.UserTextNeverBecomesControlTokens(vocabularies.Get(name));
}

/// <summary>Llama 2's SentencePiece vocabulary (from the fixtures' tokenizer.model) against llama.cpp.</summary>
public sealed class LlamaCppSentencePieceTests(LlamaCppVocabularies vocabularies) : IClassFixture<LlamaCppVocabularies>
{
    private LlamaCppVocabulary Llama2 => vocabularies.Get(LlamaCppVocabularies.Llama2);

    [FixtureFact]
    public void UserTextGivesTheIdsLlamaCppGives() => LlamaCppAgreement.UserTextIdsMatch(Llama2);

    [FixtureFact]
    public void OperatorTextWithSpecialsGivesTheIdsLlamaCppGives() => LlamaCppAgreement.OperatorTextIdsMatch(Llama2);

    [FixtureFact]
    public void InvalidUtf8GivesTheIdsLlamaCppGives() => LlamaCppAgreement.InvalidUtf8IdsMatch(Llama2);

    [FixtureFact]
    public void DecodingMatchesLlamaCppAndRoundTrips() => LlamaCppAgreement.DecodingMatchesAndRoundTrips(Llama2);

    [FixtureFact]
    public void UserTextSpellingSpecialTokensStaysText() => LlamaCppAgreement.UserTextNeverBecomesControlTokens(Llama2);
}
