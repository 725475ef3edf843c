namespace Bulwark.Engine.Model.Config;

/// <summary>
/// How an embedding model turns its per-token hidden states (the final norm's output) into one vector.
/// The values are llama.cpp's <c>llama_pooling_type</c>, which GGUF files store as <c>{arch}.pooling_type</c>
/// (4, rank, belongs to rerankers with a classification head, which the decoder does not have).
/// </summary>
public enum PoolingType
{
    /// <summary>Not an embedding model (a generator): no pooled vector unless the operator chooses one.</summary>
    None = 0,

    /// <summary>The average over every token of the input (most sentence-transformers models).</summary>
    Mean = 1,

    /// <summary>The first token's state (BERT's [CLS]).</summary>
    Cls = 2,

    /// <summary>The last token's state (Qwen3-Embedding, E5-Mistral, GTE-Qwen: decoders attend causally, so only the last token has seen the whole input).</summary>
    Last = 3,
}

/// <summary>The names pooling types go by in configuration and on the command line.</summary>
public static class PoolingTypeNames
{
    public const string Allowed = "none, mean, cls or last";

    public static string Name(PoolingType type) => type.ToString().ToLowerInvariant();

    public static bool TryParse(string? text, out PoolingType type)
    {
        type = PoolingType.None;
        switch (text?.Trim().ToLowerInvariant())
        {
            case "none": return true;
            case "mean": type = PoolingType.Mean; return true;
            case "cls" or "first": type = PoolingType.Cls; return true;
            case "last" or "lasttoken": type = PoolingType.Last; return true;
            default: return false;
        }
    }
}
