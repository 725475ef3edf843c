namespace Bulwark.Engine.Tools;

/// <summary>How a model writes a tool call in its output (the chat template teaches it one of these).</summary>
public enum ToolCallFormat
{
    /// <summary>The model has no known tool-call format: tools may be rendered, calls are not parsed.</summary>
    None,

    /// <summary>Hermes, Qwen 2.5/3, QwQ: <c>&lt;tool_call&gt;{"name": …, "arguments": {…}}&lt;/tool_call&gt;</c>, one block per call.</summary>
    Hermes,

    /// <summary>Llama 3.1/3.2: the whole reply is <c>{"name": …, "parameters": {…}}</c> (calls separated by <c>;</c>), optionally after <c>&lt;|python_tag|&gt;</c>.</summary>
    Llama3,

    /// <summary>Mistral: <c>[TOOL_CALLS]</c> then a JSON array of <c>{"name", "arguments"}</c> (Nemo) or <c>name[ARGS]{…}</c> (Small 3.2).</summary>
    Mistral,
}

/// <summary>Names of <see cref="ToolCallFormat"/> as configuration spells them, and detection from a chat template.</summary>
public static class ToolCallFormats
{
    /// <summary>
    /// The texts of tool-call markers. Some vocabularies make them control tokens (Mistral's <c>[TOOL_CALLS]</c>, Llama 3's
    /// <c>&lt;|python_tag|&gt;</c>), which decoding drops: for a request whose calls are read, they are written as text.
    /// </summary>
    public static readonly IReadOnlySet<string> Markers = new HashSet<string>(StringComparer.Ordinal)
        { "<tool_call>", "</tool_call>", "<|python_tag|>", "[TOOL_CALLS]", "[ARGS]", "[CALL_ID]" };

    /// <summary>The ids of <paramref name="tokenizer"/>'s control tokens that spell a <see cref="Markers"/> text.</summary>
    public static int[] MarkerTokens(Tokenizers.ITokenizer tokenizer) =>
        [.. Enumerable.Range(0, tokenizer.VocabSize).Where(id => tokenizer.TypeOf(id) == Tokenizers.TokenType.Control && Markers.Contains(tokenizer.TokenText(id)))];

    /// <summary>The configuration names: <c>hermes</c> (alias <c>qwen</c>), <c>llama3</c>, <c>mistral</c>, <c>none</c>.</summary>
    public static readonly IReadOnlyList<string> Names = ["hermes", "qwen", "llama3", "mistral", "none"];

    public static bool TryParse(string? name, out ToolCallFormat format)
    {
        format = name?.Trim().ToLowerInvariant() switch
        {
            "hermes" or "qwen" => ToolCallFormat.Hermes,
            "llama3" or "llama3_json" => ToolCallFormat.Llama3,
            "mistral" => ToolCallFormat.Mistral,
            "none" => ToolCallFormat.None,
            _ => (ToolCallFormat)(-1),
        };
        return Enum.IsDefined(format);
    }

    public static string Name(ToolCallFormat format) => format switch
    {
        ToolCallFormat.Hermes => "hermes",
        ToolCallFormat.Llama3 => "llama3",
        ToolCallFormat.Mistral => "mistral",
        _ => "none",
    };

    /// <summary>
    /// The format a chat template teaches, by the markers it writes: <c>&lt;tool_call&gt;</c> (Hermes/Qwen; checked
    /// first, as Hermes-3 on Llama 3.1 also says "parameters"), <c>[TOOL_CALLS]</c> (Mistral), <c>&lt;|python_tag|&gt;</c>
    /// or the <c>ipython</c> role (Llama 3.x). Anything else: <see cref="ToolCallFormat.None"/>.
    /// </summary>
    public static ToolCallFormat Detect(string? templateSource)
    {
        if (string.IsNullOrEmpty(templateSource)) return ToolCallFormat.None;
        if (templateSource.Contains("<tool_call>", StringComparison.Ordinal)) return ToolCallFormat.Hermes;
        if (templateSource.Contains("[TOOL_CALLS]", StringComparison.Ordinal)) return ToolCallFormat.Mistral;
        if (templateSource.Contains("<|python_tag|>", StringComparison.Ordinal) || templateSource.Contains("ipython", StringComparison.Ordinal))
            return ToolCallFormat.Llama3;
        return ToolCallFormat.None;
    }
}
