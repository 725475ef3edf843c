using Bulwark.Engine.Serving.Speculation;

namespace Bulwark.Server.Models;

/// <summary>
/// The server's default speculative decoding for embedded models (<c>Bulwark:Serve:Speculative</c>): what a
/// request without a <c>speculative</c> field gets. Off unless <see cref="Method"/> is <c>ngram</c>.
/// </summary>
public sealed class SpeculativeOptions
{
    public const string Section = ServeOptions.Section + ":Speculative";

    /// <summary><c>none</c> (default) or <c>ngram</c> (prompt lookup).</summary>
    public string Method { get; set; } = "none";

    public int NumSpeculativeTokens { get; set; } = new SpeculativeConfig().NumSpeculativeTokens;

    public int PromptLookupMax { get; set; } = new SpeculativeConfig().PromptLookupMax;

    public int PromptLookupMin { get; set; } = new SpeculativeConfig().PromptLookupMin;

    public IEnumerable<string> Validate()
    {
        if (Method is not ("none" or "ngram"))
            yield return $"{Section}:Method must be none or ngram; got '{(Method.Length <= 32 ? Method : Method[..32])}'.";
        if (NumSpeculativeTokens is < 1 or > SpeculativeConfig.MaxSpeculativeTokens)
            yield return $"{Section}:NumSpeculativeTokens must be between 1 and {SpeculativeConfig.MaxSpeculativeTokens}; got {NumSpeculativeTokens}.";
        if (PromptLookupMax is < 1 or > SpeculativeConfig.MaxLookup)
            yield return $"{Section}:PromptLookupMax must be between 1 and {SpeculativeConfig.MaxLookup}; got {PromptLookupMax}.";
        if (PromptLookupMin < 1 || PromptLookupMin > PromptLookupMax)
            yield return $"{Section}:PromptLookupMin must be between 1 and PromptLookupMax ({PromptLookupMax}); got {PromptLookupMin}.";
    }

    /// <summary>The engine's default; null when off. Only valid after <see cref="Validate"/>.</summary>
    public SpeculativeConfig? ToConfig() => Method != "ngram" ? null : new SpeculativeConfig
    {
        Method = SpeculativeMethod.Ngram,
        NumSpeculativeTokens = NumSpeculativeTokens,
        PromptLookupMax = PromptLookupMax,
        PromptLookupMin = PromptLookupMin,
    };
}
