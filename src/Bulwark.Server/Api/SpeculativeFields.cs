using Bulwark.Engine.Serving.Speculation;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Api;

/// <summary>
/// <c>speculative</c>: per-request speculative decoding on an embedded model, named after vLLM's
/// <c>speculative_config</c> (vLLM sets it per server; here a request may choose):
/// <c>{"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 3, "prompt_lookup_min": 1}</c>,
/// <c>{"method": "draft_model", "num_speculative_tokens": 4}</c> on a model served with a draft model (<c>--draft-model</c>),
/// or <c>{"method": "none"}</c> to turn the server's default off. Absent or null: the server's default.
/// Output is the same either way; only its speed changes.
/// </summary>
public static class SpeculativeFields
{
    public static SpeculativeConfig? Read(JsonFields f)
    {
        if (f.Object("speculative") is not { } s) return null;
        var method = s.String("method", 32) ?? "ngram";
        switch (method)
        {
            case "none":
                return SpeculativeConfig.Off;
            case "ngram":
            case "draft_model":
                break;
            default:
                throw ApiException.Invalid(s.PathOf("method"), $"{s.PathOf("method")} must be ngram, draft_model or none; got '{(method.Length <= 32 ? method : method[..32])}'.");
        }
        var defaults = new SpeculativeConfig();
        var max = (int)(s.Integer("prompt_lookup_max", 1, SpeculativeConfig.MaxLookup) ?? defaults.PromptLookupMax);
        return new SpeculativeConfig
        {
            Method = method == "ngram" ? SpeculativeMethod.Ngram : SpeculativeMethod.DraftModel,
            NumSpeculativeTokens = (int)(s.Integer("num_speculative_tokens", 1, SpeculativeConfig.MaxSpeculativeTokens) ?? defaults.NumSpeculativeTokens),
            PromptLookupMax = max,
            PromptLookupMin = (int)(s.Integer("prompt_lookup_min", 1, max) ?? Math.Min(defaults.PromptLookupMin, max)),
        };
    }
}
