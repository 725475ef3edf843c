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

    public static CompletionJob Parse(JsonElement body, IGenerationBackend backend, ApiLimits limits)
    {
        var f = new JsonFields(body, "");
        var model = ModelField.Read(f, backend.Model, limits);
        var prompt = Prompt(f, backend, limits);
        if (f.Boolean("echo") == true) throw ApiException.Unsupported("echo", "echo is not supported by this server.");
        if (f.Has("suffix")) throw ApiException.Unsupported("suffix", "suffix (insertion) is not supported by this model.");
        var choices = SamplingFields.Choices(f, limits);
        if (f.Integer("best_of", 1, limits.MaxChoices) is { } bestOf && bestOf != choices)
            throw ApiException.Unsupported("best_of", $"best_of must equal n ({choices}) on this server; got {bestOf}.");
        var logprobs = f.Integer("logprobs", 0, Math.Min(MaxLegacyLogprobs, limits.MaxTopLogprobs));
        var sampling = SamplingFields.Read(f, backend.Model, limits);
        var stop = SamplingFields.Stop(f, limits);
        var (stream, includeUsage) = SamplingFields.Streaming(f);
        var user = f.String("user", limits.MaxIdentifierLength);
        var requested = f.Integer("max_tokens", 1, limits.MaxTokens);
        var maxTokens = SamplingFields.MaxTokens(f, "max_tokens", (int?)requested, prompt.Length, backend.Model, limits, DefaultMaxTokens);
        return new CompletionJob
        {
            Kind = ResponseKind.Text,
            Model = model,
            PromptTokenIds = prompt,
            MaxTokens = maxTokens,
            Choices = choices,
            Stream = stream,
            IncludeUsage = includeUsage,
            Stop = stop,
            Sampling = sampling,
            TopLogprobs = (int?)logprobs,
            User = user,
        };
    }

    /// <summary>A string, an array of one string, an array of token ids, or an array of one such array.</summary>
    private static int[] Prompt(JsonFields f, IGenerationBackend backend, ApiLimits limits)
    {
        var value = f.Get("prompt") ?? throw ApiException.Invalid("prompt", "prompt is required.", "missing_required_parameter");
        if (value.ValueKind == JsonValueKind.String) return Encode(f.String("prompt", limits.MaxPromptCharacters)!, backend);
        var array = f.Array("prompt", 1, backend.Model.ContextLength)!.Value;
        var first = array[0];
        if (first.ValueKind is JsonValueKind.String or JsonValueKind.Array)
        {
            if (array.GetArrayLength() != 1)
                throw ApiException.Unsupported("prompt", $"prompt must hold a single prompt on this server; got {array.GetArrayLength()}. Send one request per prompt.");
            if (first.ValueKind == JsonValueKind.String)
            {
                var text = first.GetString()!;
                if (text.Length > limits.MaxPromptCharacters)
                    throw ApiException.Invalid("prompt[0]", $"prompt[0] must be at most {limits.MaxPromptCharacters} characters; got {text.Length}.", "string_above_max_length");
                return Encode(text, backend);
            }
            if (first.GetArrayLength() is 0 || first.GetArrayLength() > backend.Model.ContextLength)
                throw ApiException.Invalid("prompt[0]", $"prompt[0] must have between 1 and {backend.Model.ContextLength} token ids; got {first.GetArrayLength()}.");
            return TokenIds(first, "prompt[0]", backend.Model.VocabularySize);
        }
        return TokenIds(array, "prompt", backend.Model.VocabularySize);
    }

    private static int[] Encode(string text, IGenerationBackend backend)
    {
        var ids = backend.Encode(text, addSpecialTokens: true);
        if (ids.Length == 0) throw ApiException.Invalid("prompt", "prompt must not be empty.");
        return ids;
    }

    public static int[] TokenIds(JsonElement array, string path, int vocabularySize)
    {
        var ids = new int[array.GetArrayLength()];
        var i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out var id) || id < 0 || id >= vocabularySize)
                throw ApiException.Invalid($"{path}[{i}]", $"{path}[{i}] must be a token id between 0 and {vocabularySize - 1}; got {item.GetRawText()}.");
            ids[i++] = id;
        }
        return ids;
    }
}
