using System.Text.Json;
using System.Text.RegularExpressions;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Tokenizers.ByteLevel;

namespace Bulwark.Engine.Tokenizers.Loading;

/// <summary>
/// Reads a Hugging Face <c>tokenizer.json</c> with a byte-level BPE model: vocabulary, merges
/// in either encoding (<c>"a b"</c> or <c>["a","b"]</c>), added tokens, the pre-tokenizer
/// chain (ByteLevel, Split, Digits, Sequence) and BOS/EOS from the TemplateProcessing
/// post-processor or a <c>tokenizer_config.json</c> beside it. Anything that would change
/// tokenization and is not understood is refused with the field's name.
/// </summary>
internal static class TokenizerJsonReader
{
    public static TokenizerDefinition Read(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { MaxDepth = 64 });
        var root = document.RootElement;
        var model = Require(root, "model", path);
        var modelType = model.TryGetProperty("type", out var t) ? t.GetString() : "BPE";
        if (modelType != "BPE") throw new ModelFormatException(path, "model.type", $"only BPE is supported; got '{modelType}'");
        if (model.TryGetProperty("byte_fallback", out var fallback) && fallback.ValueKind == JsonValueKind.True)
            throw new ModelFormatException(path, "model.byte_fallback", "SentencePiece-style BPE is loaded from tokenizer.model or GGUF, not tokenizer.json");
        if (root.TryGetProperty("normalizer", out var normalizer) && normalizer.ValueKind != JsonValueKind.Null)
            throw new ModelFormatException(path, "normalizer", $"normalizers are not supported; got {normalizer.GetProperty("type").GetString()}");

        var vocab = Require(model, "vocab", path);
        var byId = new SortedDictionary<int, (string Text, TokenType Type)>();
        foreach (var entry in vocab.EnumerateObject()) byId[entry.Value.GetInt32()] = (entry.Name, TokenType.Normal);
        if (root.TryGetProperty("added_tokens", out var added))
        {
            foreach (var token in added.EnumerateArray())
            {
                var id = token.GetProperty("id").GetInt32();
                var isSpecial = token.TryGetProperty("special", out var s) && s.GetBoolean();
                byId[id] = (token.GetProperty("content").GetString()!, isSpecial ? TokenType.Control : TokenType.UserDefined);
            }
        }
        if (byId.Count == 0 || byId.Keys.First() < 0) throw new ModelFormatException(path, "model.vocab", "empty vocabulary or negative id");
        var size = byId.Keys.Last() + 1;
        if (size > 4 * byId.Count + 1024) throw new ModelFormatException(path, "model.vocab", $"ids are too sparse: largest {size - 1} for {byId.Count} tokens");
        var tokens = new string[size];
        var types = new TokenType[size];
        for (var id = 0; id < size; id++)
        {
            var (text, type) = byId.TryGetValue(id, out var v) ? v : ($"[PAD{id}]", TokenType.Unused);
            tokens[id] = text;
            types[id] = type;
        }

        var merges = new List<(string, string)>();
        foreach (var merge in Require(model, "merges", path).EnumerateArray())
        {
            if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2)
            {
                merges.Add((merge[0].GetString()!, merge[1].GetString()!));
                continue;
            }
            var text = merge.ValueKind == JsonValueKind.String ? merge.GetString()! : "";
            var space = text.IndexOf(' ', 1);
            if (space < 0) throw new ModelFormatException(path, "model.merges", $"expected \"a b\" or [\"a\",\"b\"]; got {merge.GetRawText()}");
            merges.Add((text[..space], text[(space + 1)..]));
        }

        var patterns = new List<string>();
        if (root.TryGetProperty("pre_tokenizer", out var pre) && pre.ValueKind != JsonValueKind.Null) ReadPreTokenizer(pre, patterns, path);

        var special = ReadSpecialTokens(root, path, tokens);
        return new TokenizerDefinition
        {
            Model = TokenizerModel.ByteLevelBpe,
            Tokens = tokens,
            Types = types,
            Merges = merges,
            PreTokenizerPatterns = patterns,
            IgnoreMerges = model.TryGetProperty("ignore_merges", out var ignore) && ignore.ValueKind == JsonValueKind.True,
            Special = special,
        };
    }

    private static void ReadPreTokenizer(JsonElement pre, List<string> patterns, string path)
    {
        var type = pre.GetProperty("type").GetString();
        switch (type)
        {
            case "Sequence":
                foreach (var inner in pre.GetProperty("pretokenizers").EnumerateArray()) ReadPreTokenizer(inner, patterns, path);
                break;
            case "ByteLevel":
                if (pre.TryGetProperty("add_prefix_space", out var prefix) && prefix.ValueKind == JsonValueKind.True)
                    throw new ModelFormatException(path, "pre_tokenizer.add_prefix_space", "true is not supported");
                if (!pre.TryGetProperty("use_regex", out var useRegex) || useRegex.ValueKind == JsonValueKind.True)
                    patterns.Add(PreTokenizerPatterns.Gpt2);
                break;
            case "Split":
                var behavior = pre.TryGetProperty("behavior", out var b) ? b.GetString() : "Isolated";
                var invert = pre.TryGetProperty("invert", out var i) && i.GetBoolean();
                if (behavior != "Isolated" || invert)
                    throw new ModelFormatException(path, "pre_tokenizer.behavior", $"only Isolated, not inverted, is supported; got {behavior}, invert={invert}");
                var pattern = pre.GetProperty("pattern");
                patterns.Add(pattern.TryGetProperty("Regex", out var regex) ? regex.GetString()! : Regex.Escape(pattern.GetProperty("String").GetString()!));
                break;
            case "Digits":
                patterns.Add(pre.TryGetProperty("individual_digits", out var single) && single.GetBoolean() ? PreTokenizerPatterns.SingleDigits : @"\p{N}+");
                break;
            default:
                throw new ModelFormatException(path, "pre_tokenizer.type", $"'{type}' is not supported (ByteLevel, Split, Digits, Sequence are)");
        }
    }

    /// <summary>BOS/EOS from TemplateProcessing ("$A" between special tokens) and tokenizer_config.json when present.</summary>
    private static SpecialTokens ReadSpecialTokens(JsonElement root, string path, string[] tokens)
    {
        int IdOf(string text) => Array.IndexOf(tokens, text);
        int bos = -1, eos = -1;
        bool addBos = false, addEos = false;
        if (root.TryGetProperty("post_processor", out var post) && post.ValueKind == JsonValueKind.Object)
            ReadTemplate(post, ref bos, ref eos, ref addBos, ref addEos, IdOf);

        var config = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, "tokenizer_config.json");
        if (File.Exists(config))
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(config));
            var c = document.RootElement;
            if (TokenString(c, "bos_token") is { } b && IdOf(b) is >= 0 and var bosId) bos = bosId;
            if (TokenString(c, "eos_token") is { } e && IdOf(e) is >= 0 and var eosId) eos = eosId;
            if (c.TryGetProperty("add_bos_token", out var ab) && ab.ValueKind is JsonValueKind.True or JsonValueKind.False) addBos = ab.GetBoolean();
            if (c.TryGetProperty("add_eos_token", out var ae) && ae.ValueKind is JsonValueKind.True or JsonValueKind.False) addEos = ae.GetBoolean();
        }
        return new SpecialTokens { Bos = bos, Eos = eos, AddBos = addBos && bos >= 0, AddEos = addEos && eos >= 0 };
    }

    private static void ReadTemplate(JsonElement post, ref int bos, ref int eos, ref bool addBos, ref bool addEos, Func<string, int> idOf)
    {
        var type = post.TryGetProperty("type", out var t) ? t.GetString() : null;
        if (type == "Sequence" && post.TryGetProperty("processors", out var processors))
        {
            foreach (var p in processors.EnumerateArray()) ReadTemplate(p, ref bos, ref eos, ref addBos, ref addEos, idOf);
            return;
        }
        if (type != "TemplateProcessing" || !post.TryGetProperty("single", out var single)) return;
        var seenSequence = false;
        foreach (var item in single.EnumerateArray())
        {
            if (item.TryGetProperty("Sequence", out _)) { seenSequence = true; continue; }
            if (!item.TryGetProperty("SpecialToken", out var st)) continue;
            var id = idOf(st.GetProperty("id").GetString()!);
            if (id < 0) continue;
            if (!seenSequence) { bos = id; addBos = true; }
            else { eos = id; addEos = true; }
        }
    }

    private static string? TokenString(JsonElement config, string name) =>
        !config.TryGetProperty(name, out var v) ? null
        : v.ValueKind == JsonValueKind.String ? v.GetString()
        : v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out var c) ? c.GetString() : null;

    private static JsonElement Require(JsonElement parent, string name, string path) =>
        parent.TryGetProperty(name, out var value) ? value : throw new ModelFormatException(path, name, "missing");
}
