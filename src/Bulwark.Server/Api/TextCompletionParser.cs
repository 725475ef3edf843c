using System.Text.Json;
using Bulwark.Server.Backends;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Api;

/// <summary>Validates a <c>POST /v1/completions</c> body: one prompt, as text or token ids.</summary>
public static class TextCompletionParser
{
    /// <summary>OpenAI's legacy endpoint defaults to 16 tokens when <c>max_tokens</c> is absent.</summary>
    public const int DefaultMaxTokens = 16;

    /// <summary>The legacy <c>logprobs</c> field allows at most 5 alternatives.</summary>
    public const int MaxLegacyLogprobs = 5;

    /// <summary>Stage 4 for <c>/v1/completions</c>; the prompt stage tokenizes a text prompt later.</summary>
    public static GenerationRequest Parse(JsonElement body, ModelCard model, ApiLimits limits)
    {
        var f = new JsonFields(body, "");
        var prompt = Prompt(f, model, limits);
        if (f.Boolean("echo") == true) throw ApiException.Unsupported("echo", "echo is not supported by this server.");
        if (f.Has("suffix")) throw ApiException.Unsupported("suffix", "suffix (insertion) is not supported by this model.");
        var choices = SamplingFields.Choices(f, limits);
        if (f.Integer("best_of", 1, limits.MaxChoices) is { } bestOf && bestOf != choices)
            throw ApiException.Unsupported("best_of", $"best_of must equal n ({choices}) on this server; got {bestOf}.");
        var logprobs = f.Integer("logprobs", 0, Math.Min(MaxLegacyLogprobs, limits.MaxTopLogprobs));
        var sampling = SamplingFields.Read(f, model, limits) with
        {
            N = choices,
            StopStrings = SamplingFields.Stop(f, limits),
            Logprobs = logprobs is not null,
            TopLogprobs = (int)(logprobs ?? 0),
        };
        var (stream, includeUsage) = SamplingFields.Streaming(f);
        var user = f.String("user", limits.MaxIdentifierLength);
        var (constraint, _) = ConstraintFields.Read(f, limits, responseFormat: false);
        return new GenerationRequest
        {
            Model = model.Id,
            Prompt = prompt,
            Constraint = constraint,
            Sampling = sampling,
            Speculative = SpeculativeFields.Read(f),
            RequestedMaxTokens = (int?)f.Integer("max_tokens", 1, limits.MaxTokens),
            DefaultMaxTokens = DefaultMaxTokens,
            Stream = stream,
            IncludeUsage = includeUsage,
            User = user,
        };
    }

    /// <summary>A string, an array of one string, an array of token ids, or an array of one such array.</summary>
    private static PromptInput Prompt(JsonFields f, ModelCard model, ApiLimits limits)
    {
        var value = f.Get("prompt") ?? throw ApiException.Invalid("prompt", "prompt is required.", "missing_required_parameter");
        if (value.ValueKind == JsonValueKind.String)
        {
            f.StringValue("prompt", limits.MaxPromptCharacters);
            PromptLengthBound.RefuseOverContext(value, "prompt", model);
            return PromptInput.FromText(value.GetString()!);
        }
        var array = f.Array("prompt", 1, model.ContextLimit)!.Value;
        var first = array[0];
        if (first.ValueKind is JsonValueKind.String or JsonValueKind.Array)
        {
            if (array.GetArrayLength() != 1)
                throw ApiException.Unsupported("prompt", $"prompt must hold a single prompt on this server; got {array.GetArrayLength()}. Send one request per prompt.");
            if (first.ValueKind == JsonValueKind.String)
            {
                JsonFields.RefuseLonger(first, "prompt[0]", limits.MaxPromptCharacters);
                PromptLengthBound.RefuseOverContext(first, "prompt[0]", model);
                return PromptInput.FromText(first.GetString()!);
            }
            if (first.GetArrayLength() is 0 || first.GetArrayLength() > model.ContextLimit)
                throw ApiException.Invalid("prompt[0]", $"prompt[0] must have between 1 and {model.ContextLimit} token ids; got {first.GetArrayLength()}.");
            return PromptInput.FromTokens(TokenIds(first, "prompt[0]", model.VocabularyLimit));
        }
        return PromptInput.FromTokens(TokenIds(array, "prompt", model.VocabularyLimit));
    }

    public static int[] TokenIds(JsonElement array, string path, int vocabularySize)
    {
        var ids = new int[array.GetArrayLength()];
        var i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out var id) || id < 0 || id >= vocabularySize)
                throw ApiException.Invalid($"{path}[{i}]", $"{path}[{i}] must be a token id between 0 and {vocabularySize - 1}; got {(item.ValueKind == JsonValueKind.Number ? JsonFields.Raw(item) : JsonFields.Kind(item))}.");
            ids[i++] = id;
        }
        return ids;
    }
}
