using Bulwark.Engine.Serving.Execution;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Templates;
using Bulwark.Engine.Tokenizers;
using Bulwark.Engine.Tokenizers.Loading;
using Bulwark.Server.Backends.Embedded;
using Bulwark.Server.Backends;

namespace Bulwark.Server.Tests.Hosting;

/// <summary>
/// A model whose greedy output is known in advance, for testing <see cref="EmbeddedBackend"/>
/// through the real engine: after a letter it writes the next letter, after 'z' its
/// end-of-sequence token, after anything else 'a'. The vocabulary is SentencePiece-style with
/// byte fallback: &lt;unk&gt;, &lt;s&gt;, &lt;/s&gt;, three chat markers, '▁', then the 256 bytes.
/// </summary>
internal sealed class AlphabetModel : IModelExecutor
{
    public const int Eos = 2;
    public const int FirstByte = 7;
    public const int Vocab = FirstByte + 256;
    public const string Template =
        "{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}";

    public int VocabSize => Vocab;

    public int MaxContextLength { get; init; } = 1024;

    /// <summary>Slows every step down, so tests can act while a sequence runs.</summary>
    public TimeSpan StepDelay { get; init; }

    /// <summary>Every step throws: a broken model.</summary>
    public bool Broken { get; init; }

    public long KvBytesPerBlock(int blockSize) => blockSize * 8L;

    public void AllocateKvCache(int blockCount, int blockSize) { }

    public void Execute(StepBatch batch, Span<float> logits)
    {
        if (Broken) throw new InvalidOperationException("broken model");
        if (StepDelay > TimeSpan.Zero) Thread.Sleep(StepDelay);
        for (var s = 0; s < batch.SequenceCount; s++)
        {
            for (var r = 0; r < batch.LogitRowsOf(s); r++)
            {
                var last = batch.TokenIds[batch.LogitTokenIndex(s, r)];
                var output = logits.Slice((batch.LogitRow(s) + r) * Vocab, Vocab);
                output.Clear();
                output[Next(last)] = 8f;
            }
        }
    }

    public static int Next(int token) => token switch
    {
        >= FirstByte + 'a' and < FirstByte + 'z' => token + 1,
        FirstByte + 'z' => Eos,
        _ => FirstByte + 'a',
    };

    /// <param name="control3">The text of control token 3 (a test may make it another marker).</param>
    public static ITokenizer Tokenizer(string control3 = "<|system|>")
    {
        var tokens = new List<string> { "<unk>", "<s>", "</s>", control3, "<|user|>", "<|assistant|>", "\u2581" };
        var types = new List<TokenType> { TokenType.Unknown, TokenType.Control, TokenType.Control, TokenType.Control, TokenType.Control, TokenType.Control, TokenType.Normal };
        for (var b = 0; b < 256; b++)
        {
            tokens.Add($"<0x{b:X2}>");
            types.Add(TokenType.Byte);
        }
        return TokenizerFactory.Create(new TokenizerDefinition
        {
            Model = TokenizerModel.SentencePieceBpe,
            Tokens = tokens,
            Types = types,
            Scores = new float[tokens.Count],
            AddSpacePrefix = false,
            Special = new SpecialTokens { Bos = 1, Eos = Eos, Unknown = 0, AddBos = true },
        });
    }

    public static EmbeddedBackend Backend(AlphabetModel? model = null, int? kvBlocks = null, string? notice = null, string? template = null, ITokenizer? tokenizer = null) =>
        new(new LlmEngine(model ?? new AlphabetModel(), new EngineOptions { EosTokenIds = [Eos], KvCacheBlocks = kvBlocks ?? 256 }),
            tokenizer ?? Tokenizer(), ChatTemplate.Parse(template ?? Template), "alphabet", new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero), notice);
}
