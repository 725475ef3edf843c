using System.Text.Json;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;

namespace Bulwark.Engine.Templates;

/// <summary>
/// Where a model's chat template comes from, with the special-token strings transformers
/// passes it (<c>bos_token</c>, <c>eos_token</c>, ...): a GGUF's <c>tokenizer.chat_template</c>,
/// a Hugging Face folder's <c>tokenizer_config.json</c> (or its <c>chat_template.jinja</c>),
/// or a file the operator names.
/// </summary>
public sealed record ChatTemplateSource(string Source, IReadOnlyDictionary<string, string> SpecialTokens, string Origin)
{
    /// <summary>The special-token variables transformers passes to every template, by their tokenizer_config.json names.</summary>
    private static readonly string[] SpecialTokenNames = ["bos_token", "eos_token", "unk_token", "pad_token"];

    /// <summary>A template file the operator names; no special tokens come with it.</summary>
    public static ChatTemplateSource FromFile(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"template file not found: {path}", path);
        return new ChatTemplateSource(File.ReadAllText(path), new Dictionary<string, string>(), path);
    }

    /// <summary>A GGUF file or a Hugging Face model folder.</summary>
    public static ChatTemplateSource FromModel(string path)
    {
        if (Directory.Exists(path)) return FromHuggingFaceFolder(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"model not found: {path} (expected a .gguf file or a folder with tokenizer_config.json)", path);
        if (Path.GetFileName(path) == "tokenizer_config.json") return FromHuggingFaceFolder(Path.GetDirectoryName(Path.GetFullPath(path))!);
        using var gguf = GgufFile.Open(path);
        return FromGguf(gguf);
    }

    public static ChatTemplateSource FromGguf(GgufFile gguf)
    {
        var source = gguf.GetStringOrNull("tokenizer.chat_template")
            ?? throw new ModelFormatException(gguf.Path, "tokenizer.chat_template", "missing: the model carries no chat template (name one with --template)");
        var tokens = gguf.GetArrayOrNull<string>("tokenizer.ggml.tokens");
        var special = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, key) in new[] { ("bos_token", "bos"), ("eos_token", "eos"), ("unk_token", "unknown"), ("pad_token", "padding") })
        {
            var id = gguf.GetIntegerOrNull($"tokenizer.ggml.{key}_token_id");
            if (id is null || tokens is null) continue;
            if (id < 0 || id >= tokens.Length)
                throw new ModelFormatException(gguf.Path, $"tokenizer.ggml.{key}_token_id", $"must be between 0 and {tokens.Length - 1}; got {id}");
            special[name] = tokens[(int)id];
        }
        return new ChatTemplateSource(source, special, gguf.Path);
    }

    /// <summary>
    /// tokenizer_config.json's <c>chat_template</c> (a string, or a list of named templates of
    /// which "default" is taken), else <c>chat_template.jinja</c> beside it, as transformers reads them.
    /// </summary>
    public static ChatTemplateSource FromHuggingFaceFolder(string folder)
    {
        var configPath = Path.Combine(folder, "tokenizer_config.json");
        var jinjaPath = Path.Combine(folder, "chat_template.jinja");
        var special = new Dictionary<string, string>(StringComparer.Ordinal);
        string? source = null;
        var origin = configPath;
        if (File.Exists(configPath))
        {
            using var config = JsonDocument.Parse(File.ReadAllBytes(configPath), new JsonDocumentOptions { MaxDepth = 64 });
            var root = config.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new ModelFormatException(configPath, "(root)", "must be a JSON object");
            foreach (var name in SpecialTokenNames)
            {
                if (root.TryGetProperty(name, out var token) && SpecialTokenText(token) is { } text) special[name] = text;
            }
            if (root.TryGetProperty("chat_template", out var template)) source = TemplateText(template, configPath);
        }
        if (source is null && File.Exists(jinjaPath))
        {
            source = File.ReadAllText(jinjaPath);
            origin = jinjaPath;
        }
        if (source is null)
            throw new FileNotFoundException($"no chat template in {folder}: neither tokenizer_config.json's chat_template nor chat_template.jinja (name one with --template)");
        return new ChatTemplateSource(source, special, origin);
    }

    // transformers writes special tokens as a string or as an AddedToken object {"content": ...}.
    private static string? SpecialTokenText(JsonElement token) => token.ValueKind switch
    {
        JsonValueKind.String => token.GetString(),
        JsonValueKind.Object when token.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String => content.GetString(),
        _ => null,
    };

    private static string TemplateText(JsonElement template, string configPath)
    {
        switch (template.ValueKind)
        {
            case JsonValueKind.String:
                return template.GetString()!;
            case JsonValueKind.Array:
                foreach (var named in template.EnumerateArray())
                {
                    if (named.ValueKind == JsonValueKind.Object && named.TryGetProperty("name", out var name) && name.ValueEquals("default")
                        && named.TryGetProperty("template", out var text) && text.ValueKind == JsonValueKind.String)
                        return text.GetString()!;
                }
                throw new ModelFormatException(configPath, "chat_template", "is a list of named templates without one named \"default\"");
            default:
                throw new ModelFormatException(configPath, "chat_template", $"must be a string or a list of named templates; got {template.ValueKind}");
        }
    }
}
