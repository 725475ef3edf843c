using Bulwark.Engine.Serving.Speculation;

namespace Bulwark.Server.Models;

/// <summary>
/// The server's default speculative decoding for embedded models (<c>Bulwark:Serve:Speculative</c>): what a
/// request without a <c>speculative</c> field gets. Off unless <see cref="Method"/> is <c>ngram</c> or <c>draft_model</c>;
/// <see cref="DraftModel"/> loads a draft model beside the served model, which requests may then ask for.
/// </summary>
public sealed class SpeculativeOptions
{
    public const string Section = ServeOptions.Section + ":Speculative";

    /// <summary><c>none</c> (default), <c>ngram</c> (prompt lookup) or <c>draft_model</c> (needs <see cref="DraftModel"/>).</summary>
    public string Method { get; set; } = "none";

    /// <summary>
    /// A smaller model with the same tokenizer (<c>--draft-model</c>), loaded beside the model <c>serve</c> starts with: a
    /// registered name (verified, and signed when signatures are required) or a path. Empty: none.
    /// </summary>
    public string? DraftModel { get; set; }

    /// <summary>Memory for the draft model's KV cache (128MiB by default).</summary>
    public string DraftKvCacheMemory { get; set; } = "128MiB";

    public long DraftKvCacheMemoryBytes => ServeOptions.ParseBytes(DraftKvCacheMemory) ?? -1;

    public int NumSpeculativeTokens { get; set; } = new SpeculativeConfig().NumSpeculativeTokens;

    public int PromptLookupMax { get; set; } = new SpeculativeConfig().PromptLookupMax;

    public int PromptLookupMin { get; set; } = new SpeculativeConfig().PromptLookupMin;

    public IEnumerable<string> Validate()
    {
        if (Method is not ("none" or "ngram" or "draft_model"))
            yield return $"{Section}:Method must be none, ngram or draft_model; got '{(Method.Length <= 32 ? Method : Method[..32])}'.";
        if (Method == "draft_model" && string.IsNullOrWhiteSpace(DraftModel))
            yield return $"{Section}:Method draft_model needs {Section}:DraftModel (--draft-model): the model that drafts.";
        if (DraftModel is { Length: > 4096 })
            yield return $"{Section}:DraftModel must be at most 4096 characters; got {DraftModel.Length}.";
        if (DraftKvCacheMemoryBytes is < ServeOptions.MinKvCacheMemory or > ServeOptions.MaxKvCacheMemory)
            yield return $"{Section}:DraftKvCacheMemory must be a size between 1MiB and 1TiB such as 128MiB; got '{DraftKvCacheMemory}'.";
        if (NumSpeculativeTokens is < 1 or > SpeculativeConfig.MaxSpeculativeTokens)
            yield return $"{Section}:NumSpeculativeTokens must be between 1 and {SpeculativeConfig.MaxSpeculativeTokens}; got {NumSpeculativeTokens}.";
        if (PromptLookupMax is < 1 or > SpeculativeConfig.MaxLookup)
            yield return $"{Section}:PromptLookupMax must be between 1 and {SpeculativeConfig.MaxLookup}; got {PromptLookupMax}.";
        if (PromptLookupMin < 1 || PromptLookupMin > PromptLookupMax)
            yield return $"{Section}:PromptLookupMin must be between 1 and PromptLookupMax ({PromptLookupMax}); got {PromptLookupMin}.";
    }

    /// <summary>The engine's default; null when off. Only valid after <see cref="Validate"/>.</summary>
    public SpeculativeConfig? ToConfig() => Method is not ("ngram" or "draft_model") ? null : new SpeculativeConfig
    {
        Method = Method == "ngram" ? SpeculativeMethod.Ngram : SpeculativeMethod.DraftModel,
        NumSpeculativeTokens = NumSpeculativeTokens,
        PromptLookupMax = PromptLookupMax,
        PromptLookupMin = PromptLookupMin,
    };
}
