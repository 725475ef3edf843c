using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Tokenizers.ByteLevel;

namespace Bulwark.Engine.Tokenizers.Loading;

/// <summary>Loads a tokenizer from the files models ship with.</summary>
public static class TokenizerLoader
{
    /// <summary>A Hugging Face tokenizer.json (byte-level BPE); reads tokenizer_config.json beside it for BOS/EOS.</summary>
    public static ITokenizer FromTokenizerJson(string path, TokenizerLimits? limits = null) =>
        TokenizerFactory.Create(TokenizerJsonReader.Read(path), limits);

    /// <summary>A SentencePiece tokenizer.model (BPE with byte fallback).</summary>
    public static ITokenizer FromSentencePieceModel(string path, TokenizerLimits? limits = null) =>
        TokenizerFactory.Create(SentencePieceModelReader.Read(path), limits);

    /// <summary>The <c>tokenizer.ggml.*</c> metadata of a GGUF file.</summary>
    public static ITokenizer FromGguf(string path, TokenizerLimits? limits = null)
    {
        using var gguf = GgufFile.Open(path);
        return FromGguf(gguf, limits);
    }

    public static ITokenizer FromGguf(GgufFile gguf, TokenizerLimits? limits = null) =>
        TokenizerFactory.Create(GgufTokenizerReader.Read(gguf), limits);

    /// <summary>Picks the reader by file: *.gguf, tokenizer.model (*.model), else tokenizer.json; a folder is searched for them.</summary>
    public static ITokenizer FromPath(string path, TokenizerLimits? limits = null)
    {
        if (Directory.Exists(path))
        {
            foreach (var name in new[] { "tokenizer.json", "tokenizer.model" })
            {
                var candidate = Path.Combine(path, name);
                if (File.Exists(candidate)) return FromPath(candidate, limits);
            }
            var gguf = Directory.EnumerateFiles(path, "*.gguf").Order(StringComparer.Ordinal).FirstOrDefault();
            return gguf is not null ? FromGguf(gguf, limits)
                : throw new FileNotFoundException($"no tokenizer.json, tokenizer.model or *.gguf in {path}");
        }
        if (!File.Exists(path)) throw new FileNotFoundException($"tokenizer file not found: {path}", path);
        return Path.GetExtension(path).ToLowerInvariant() switch
        {
            ".gguf" => FromGguf(path, limits),
            ".model" => FromSentencePieceModel(path, limits),
            _ => FromTokenizerJson(path, limits),
        };
    }

    /// <summary>
    /// Reads the definition of an OpenAI <c>.tiktoken</c> rank file: ranks are ids, the merges
    /// reproduce tiktoken's rule, <paramref name="specialTokens"/> become control tokens.
    /// </summary>
    public static TokenizerDefinition ReadTiktoken(Stream stream, string pattern, IReadOnlyDictionary<string, int> specialTokens, string source = "tiktoken") =>
        TiktokenReader.Read(stream, source, pattern, specialTokens);

    public static TokenizerDefinition ReadTokenizerJson(string path) => TokenizerJsonReader.Read(path);

    public static TokenizerDefinition ReadSentencePieceModel(string path) => SentencePieceModelReader.Read(path);

    public static TokenizerDefinition ReadGguf(GgufFile gguf) => GgufTokenizerReader.Read(gguf);

    /// <summary>The named patterns, for callers that build definitions themselves.</summary>
    public static string PatternFor(string encoding) => encoding switch
    {
        "gpt2" or "r50k_base" => PreTokenizerPatterns.Gpt2,
        "cl100k_base" => PreTokenizerPatterns.Cl100k,
        "o200k_base" => PreTokenizerPatterns.O200k,
        _ => throw new ArgumentOutOfRangeException(nameof(encoding), encoding, "known encodings: gpt2, r50k_base, cl100k_base, o200k_base"),
    };
}
