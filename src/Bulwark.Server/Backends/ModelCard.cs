namespace Bulwark.Server.Backends;

/// <summary>
/// What <c>/v1/models</c> says about the served model. <see cref="Notice"/> is shown verbatim
/// to users: the demo model uses it to say that its weights are random and how to serve a real one.
/// <see cref="ContextLength"/> and <see cref="VocabularySize"/> are 0 when unknown (an upstream
/// that does not say): the upstream then judges what depends on them.
/// </summary>
public sealed record ModelCard(
    string Id,
    int ContextLength,
    int VocabularySize,
    DateTimeOffset Created,
    string OwnedBy = "bulwark",
    string? Notice = null)
{
    /// <summary>The upstream pool that serves the model (the <c>upstream</c> label of the generation metrics); null for a model this process runs.</summary>
    public string? Pool { get; init; }

    /// <summary>How the model writes tool calls (from its chat template or configured); None for an upstream, which relays calls itself.</summary>
    public Bulwark.Engine.Tools.ToolCallFormat ToolFormat { get; init; }

    /// <summary>
    /// The most UTF-8 bytes of a prompt one token of this model stands for (<see cref="Bulwark.Engine.Tokenizers.ITokenizer.MaxInputBytesPerToken"/>);
    /// 0 when unknown (an upstream without a configured tokenizer). A text prompt over the context by this bound is refused before it is read.
    /// </summary>
    public int MaxInputBytesPerToken { get; init; }

    /// <summary>The context length as an upper bound for validation (no bound when unknown).</summary>
    public int ContextLimit => ContextLength > 0 ? ContextLength : int.MaxValue;

    /// <summary>The vocabulary size as an upper bound for token ids (no bound when unknown).</summary>
    public int VocabularyLimit => VocabularySize > 0 ? VocabularySize : int.MaxValue;
}
