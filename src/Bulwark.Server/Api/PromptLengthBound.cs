using System.Text.Json;
using Bulwark.Server.Backends;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Api;

/// <summary>
/// Refuses a text prompt that cannot fit the context, in the contract stage, before its string is made,
/// sanitized, scanned, templated or tokenized. Exact, never a guess: the prompt has at least
/// <c>⌈B / M⌉</c> tokens, where <c>B</c> is <see cref="JsonStringSize.MinSanitizedUtf8Bytes"/> (at most
/// what the tokenizer will be given, whatever the input guard's policy) and <c>M</c> is
/// <see cref="ModelCard.MaxInputBytesPerToken"/> (no token stands for more bytes); when that alone fills
/// the context the prompt stage would refuse it too, with the exact count, after all that work. A prompt
/// under the bound goes on to the exact count, which still refuses what does not fit.
/// </summary>
public static class PromptLengthBound
{
    /// <summary>The least number of tokens <paramref name="utf8Bytes"/> bytes of text encode to when no token stands for more than <paramref name="maxBytesPerToken"/>.</summary>
    public static long MinimumTokens(long utf8Bytes, int maxBytesPerToken) => (utf8Bytes + maxBytesPerToken - 1) / maxBytesPerToken;

    /// <summary>Whether a model's card allows the bound: a known context and a tokenizer with a bound (0 otherwise: an upstream without one).</summary>
    public static bool Applies(ModelCard model) => model.ContextLength > 0 && model.MaxInputBytesPerToken > 0;

    /// <exception cref="ApiException">400 <c>context_length_exceeded</c> naming <paramref name="path"/> when the text provably leaves no room for output.</exception>
    public static void RefuseOverContext(JsonElement text, string path, ModelCard model)
    {
        if (!Applies(model)) return;
        var perToken = model.MaxInputBytesPerToken;
        // Perf: the raw length bounds the bytes from above; most prompts are refused by nothing and cost no pass.
        if (MinimumTokens(JsonStringSize.RawLength(text), perToken) < model.ContextLength) return;
        var bytes = JsonStringSize.Of(text).MinSanitizedUtf8Bytes;
        var tokens = MinimumTokens(bytes, perToken);
        if (tokens < model.ContextLength) return;
        throw ApiException.Invalid(path,
            $"This model's maximum context length is {model.ContextLength} tokens; {path} has at least {tokens} tokens ({bytes} UTF-8 bytes, and no token of this model stands for more than {perToken}), which leaves no room for output. Reduce the prompt.",
            "context_length_exceeded");
    }
}
