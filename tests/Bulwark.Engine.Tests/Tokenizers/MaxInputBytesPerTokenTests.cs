using System.Text;
using Bulwark.Engine.Synthesis;
using Bulwark.Engine.Tokenizers;
using Bulwark.Engine.Tokenizers.Loading;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Tokenizers;

/// <summary>
/// <see cref="ITokenizer.MaxInputBytesPerToken"/> is a bound a server refuses prompts by, so it must
/// hold for every text: a text of B UTF-8 bytes encodes to at least ⌈B / bound⌉ tokens. Checked
/// against the real encoder on random and adversarial texts for both algorithms.
/// </summary>
public sealed class MaxInputBytesPerTokenTests
{
    // Pieces chosen to merge into long tokens (words, runs of spaces and newlines, code), to fall back to
    // bytes (rare scripts, emoji) and, for SentencePiece, the '▁' its vocabulary uses for a space typed literally.
    private static readonly string[] Pieces =
    [
        " the", " and", "ing", "tion", "                ", "\n\n\n\n", "\t\t", "----------------", "================",
        "▁", "▁▁▁▁▁▁▁▁", "é", "日本語", "🙂", "𝄞", "<|endoftext|>", "<s>", "0123456789", "https://", ".", ",", "a", "Z",
        "function(", "    return", "\r\n", "\uD800", " w123", "'s", "!!",
    ];

    public static TheoryData<string> Vocabularies => ["gpt2", "cl100k_base", "synthetic-512", "synthetic-full", "llama2"];

    [Theory]
    [MemberData(nameof(Vocabularies))]
    public void EveryTextHasAtLeastItsBytesOverTheBoundTokens(string vocabulary)
    {
        if (vocabulary == "llama2" && !Fixtures.Available) return;
        var tokenizer = Tokenizer(vocabulary);
        var bound = tokenizer.MaxInputBytesPerToken;
        Assert.True(bound >= 1, $"{vocabulary}: bound {bound}");
        var random = new Random(21);
        for (var round = 0; round < 400; round++)
        {
            var text = new StringBuilder();
            var pieces = random.Next(1, 60);
            for (var i = 0; i < pieces; i++)
            {
                var piece = Pieces[random.Next(Pieces.Length)];
                text.Insert(0, piece, round % 4 == 0 ? random.Next(1, 20) : 1); // some texts are one piece repeated
            }
            AssertBound(tokenizer, text.ToString(), vocabulary);
        }
        // The longest token's own text and decoded piece, repeated: the texts that come closest to the bound.
        for (var id = 0; id < tokenizer.VocabSize; id++)
        {
            var piece = Encoding.UTF8.GetString(tokenizer.TokenBytes(id, renderSpecial: true));
            if (Encoding.UTF8.GetByteCount(piece) < bound - 2 && Encoding.UTF8.GetByteCount(tokenizer.TokenText(id)) < bound - 2) continue;
            AssertBound(tokenizer, string.Concat(Enumerable.Repeat(piece, 5)), vocabulary);
            AssertBound(tokenizer, string.Concat(Enumerable.Repeat(tokenizer.TokenText(id), 5)), vocabulary);
        }
    }

    [Fact]
    public void ASentencePieceVocabularyThatDropsBytesHasNoBound()
    {
        // No <0xNN> tokens and no unknown token: a character outside the vocabulary becomes no token at all.
        var definition = new TokenizerDefinition
        {
            Model = TokenizerModel.SentencePieceBpe,
            Tokens = ["▁", "a", "b", "ab"],
            Types = [TokenType.Normal, TokenType.Normal, TokenType.Normal, TokenType.Normal],
            Scores = [0f, 0f, 0f, 1f],
            Special = new SpecialTokens { Unknown = -1, Bos = -1, Eos = -1 },
        };
        var tokenizer = TokenizerFactory.Create(definition);
        Assert.Equal([0], tokenizer.Encode("日本", addSpecial: false)); // the space prefix '▁'; the six bytes vanish
        Assert.Equal(0, tokenizer.MaxInputBytesPerToken);

        var withUnknown = TokenizerFactory.Create(definition with
        {
            Tokens = [.. definition.Tokens, "<unk>"],
            Types = [.. definition.Types, TokenType.Unknown],
            Scores = [.. definition.Scores!, 0f],
            Special = new SpecialTokens { Unknown = 4, Bos = -1, Eos = -1 },
        });
        Assert.Equal(5, withUnknown.MaxInputBytesPerToken); // "<unk>" spelled out; "ab" and "▁" are shorter
        AssertBound(withUnknown, "日本 ab", "with unknown");
    }

    [Theory]
    [MemberData(nameof(Vocabularies))]
    public void CountTokensAtLeastIsALowerBoundOfTheEncodingCutAtStopAt(string vocabulary)
    {
        if (vocabulary == "llama2" && !Fixtures.Available) return;
        var tokenizer = Tokenizer(vocabulary);
        var random = new Random(22);
        for (var round = 0; round < 300; round++)
        {
            var text = new StringBuilder();
            for (var i = random.Next(0, 80); i > 0; i--) text.Append(Pieces[random.Next(Pieces.Length)]);
            var s = text.ToString();
            foreach (var addSpecial in new[] { true, false })
            {
                var tokens = tokenizer.Encode(s, addSpecial).Length;
                var all = tokenizer.CountTokensAtLeast(s, int.MaxValue, addSpecial);
                Assert.True(all <= tokens, $"{vocabulary}: counted {all}, encoded {tokens}: {Truncate(s)}");
                foreach (var stopAt in new[] { 1, Math.Max(1, all / 2), all, all + 1 })
                    Assert.Equal(Math.Min(stopAt, all), tokenizer.CountTokensAtLeast(s, stopAt, addSpecial));
            }
        }
    }

    [Fact]
    public void ByteLevelCountsPiecesSoALongPromptIsCountedPastAContextWithoutItsIds()
    {
        // The soak's over-long prompt on the demo model's vocabulary: 6,000 words, 34,889 bytes, 20,191 tokens; context 2,048.
        var tokenizer = Tokenizer("synthetic-demo");
        var prompt = string.Join(' ', Enumerable.Range(0, 6000).Select(i => "w" + i));
        Assert.True((Encoding.UTF8.GetByteCount(prompt) + tokenizer.MaxInputBytesPerToken - 1) / tokenizer.MaxInputBytesPerToken < 2048,
            "the byte bound alone would not refuse it");
        Assert.Equal(2048, tokenizer.CountTokensAtLeast(prompt, 2048)); // warm-up: the regex and statics

        var before = GC.GetAllocatedBytesForCurrentThread();
        var counted = tokenizer.CountTokensAtLeast(prompt, 2048);
        var counting = GC.GetAllocatedBytesForCurrentThread() - before;
        before = GC.GetAllocatedBytesForCurrentThread();
        var tokens = tokenizer.Encode(prompt).Length;
        var encoding = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(2048, counted);
        Assert.True(tokens > 2048);
        Assert.True(counting < 1024 && counting * 100 < encoding, $"counting allocated {counting} bytes, encoding {encoding}");
    }

    private static void AssertBound(ITokenizer tokenizer, string text, string vocabulary)
    {
        var bytes = Encoding.UTF8.GetByteCount(text);
        var tokens = tokenizer.Encode(text, addSpecial: false).Length;
        var least = (bytes + tokenizer.MaxInputBytesPerToken - 1) / tokenizer.MaxInputBytesPerToken;
        Assert.True(tokens >= least, $"{vocabulary}: {tokens} tokens for {bytes} bytes, below ⌈{bytes}/{tokenizer.MaxInputBytesPerToken}⌉ = {least}: {Truncate(text)}");
    }

    private static ITokenizer Tokenizer(string vocabulary) => vocabulary switch
    {
        "llama2" => TokenizerLoader.FromSentencePieceModel(Fixtures.PathOf("tokenizers", "llama2", "tokenizer.model")),
        "synthetic-512" => TokenizerFactory.Create(SyntheticVocabulary.Create(512)),
        "synthetic-full" => TokenizerFactory.Create(SyntheticVocabulary.Create(SyntheticVocabulary.MaximumSize)),
        "synthetic-demo" => TokenizerFactory.Create(SyntheticVocabulary.Create(SyntheticModel.Demo.Vocab)),
        _ => TiktokenVocabularies.Get(vocabulary).Ours,
    };

    private static string Truncate(string text) => text.Length <= 80 ? text : text[..80] + "…";
}
