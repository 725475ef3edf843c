using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Tokenizers.ByteLevel;

namespace Bulwark.Engine.Tokenizers.Loading;

/// <summary>
/// Reads <c>tokenizer.ggml.*</c> metadata: "gpt2" (byte-level BPE, merges, pre-tokenizer by
/// <c>tokenizer.ggml.pre</c>) or "llama" (SentencePiece BPE, scores). Defaults follow
/// llama.cpp where a key is absent, so a file tokenizes the same in both.
/// </summary>
internal static class GgufTokenizerReader
{
    public static TokenizerDefinition Read(GgufFile gguf)
    {
        var model = gguf.GetString("tokenizer.ggml.model");
        var tokens = gguf.GetArrayOrNull<string>("tokenizer.ggml.tokens")
            ?? throw new ModelFormatException(gguf.Path, "tokenizer.ggml.tokens", "missing");
        var types = ReadTypes(gguf, tokens.Length);
        var isSentencePiece = model switch
        {
            "llama" => true,
            "gpt2" => false,
            _ => throw new ModelFormatException(gguf.Path, "tokenizer.ggml.model", $"'{model}' is not supported (gpt2 and llama are)"),
        };

        var pre = isSentencePiece ? null : gguf.GetStringOrNull("tokenizer.ggml.pre");
        var preTokenizer = isSentencePiece ? default : PreTokenizerPatterns.ForLlamaCpp(pre)
            ?? throw new ModelFormatException(gguf.Path, "tokenizer.ggml.pre", $"pre-tokenizer '{pre ?? "(absent)"}' is not supported");

        var special = new SpecialTokens
        {
            Bos = Id(gguf, "tokenizer.ggml.bos_token_id", isSentencePiece ? 1 : -1, tokens.Length),
            Eos = Id(gguf, "tokenizer.ggml.eos_token_id", isSentencePiece ? 2 : -1, tokens.Length),
            Unknown = Id(gguf, "tokenizer.ggml.unknown_token_id", isSentencePiece ? 0 : -1, tokens.Length),
            Padding = Id(gguf, "tokenizer.ggml.padding_token_id", -1, tokens.Length),
            EndOfTurn = Id(gguf, "tokenizer.ggml.eot_token_id", -1, tokens.Length),
            // llama.cpp adds BOS by default for SentencePiece and the Llama 3 family (the pre-tokenizers that ignore merges).
            AddBos = gguf.GetBoolOrNull("tokenizer.ggml.add_bos_token") ?? (isSentencePiece || preTokenizer.IgnoreMerges),
            AddEos = gguf.GetBoolOrNull("tokenizer.ggml.add_eos_token") ?? false,
        };

        if (isSentencePiece)
        {
            var scores = gguf.GetArrayOrNull<float>("tokenizer.ggml.scores") ?? new float[tokens.Length];
            if (scores.Length != tokens.Length)
                throw new ModelFormatException(gguf.Path, "tokenizer.ggml.scores", $"must have {tokens.Length} entries (one per token); got {scores.Length}");
            return new TokenizerDefinition
            {
                Model = TokenizerModel.SentencePieceBpe,
                Tokens = tokens,
                Types = types,
                Scores = scores,
                AddSpacePrefix = gguf.GetBoolOrNull("tokenizer.ggml.add_space_prefix") ?? true,
                Special = special,
            };
        }

        var (patterns, ignoreMerges) = preTokenizer;
        var merges = gguf.GetArrayOrNull<string>("tokenizer.ggml.merges")
            ?? throw new ModelFormatException(gguf.Path, "tokenizer.ggml.merges", "missing (byte-level BPE needs merges)");
        var pairs = new (string, string)[merges.Length];
        for (var i = 0; i < merges.Length; i++)
        {
            // llama.cpp splits at the first space after the first character.
            var space = merges[i].Length > 1 ? merges[i].IndexOf(' ', 1) : -1;
            if (space < 0) throw new ModelFormatException(gguf.Path, $"tokenizer.ggml.merges[{i}]", $"expected \"left right\"; got \"{merges[i]}\"");
            pairs[i] = (merges[i][..space], merges[i][(space + 1)..]);
        }
        return new TokenizerDefinition
        {
            Model = TokenizerModel.ByteLevelBpe,
            Tokens = tokens,
            Types = types,
            Merges = pairs,
            PreTokenizerPatterns = patterns,
            PreTokenizerName = pre,
            IgnoreMerges = ignoreMerges,
            Special = special,
        };
    }

    private static TokenType[] ReadTypes(GgufFile gguf, int count)
    {
        var types = new TokenType[count];
        var array = gguf.GetArrayOrNull("tokenizer.ggml.token_type");
        if (array is null)
        {
            Array.Fill(types, TokenType.Normal);
            return types;
        }
        if (array.Count != count)
            throw new ModelFormatException(gguf.Path, "tokenizer.ggml.token_type", $"must have {count} entries (one per token); got {array.Count}");
        for (var i = 0; i < count; i++)
        {
            var value = Convert.ToInt64(array.Items.GetValue(i), System.Globalization.CultureInfo.InvariantCulture);
            types[i] = value is >= 0 and <= 6 ? (TokenType)value
                : throw new ModelFormatException(gguf.Path, $"tokenizer.ggml.token_type[{i}]", $"must be 0..6; got {value}");
        }
        return types;
    }

    private static int Id(GgufFile gguf, string key, int fallback, int count)
    {
        var value = gguf.GetIntegerOrNull(key);
        if (value is null) return fallback;
        if (value < 0 || value >= count)
            throw new ModelFormatException(gguf.Path, key, $"must be between 0 and {count - 1}; got {value}");
        return (int)value;
    }
}
