using System.Globalization;
using System.Text.Json;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Server.Backends;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Api;

/// <summary>
/// The request fields OpenAI's chat and text completions share: sampling, <c>stop</c>, <c>n</c>,
/// <c>seed</c>, <c>logit_bias</c>, <c>user</c>, streaming. Ranges follow OpenAI's documentation;
/// <c>top_k</c>, <c>min_p</c> and <c>repetition_penalty</c> follow vLLM's extensions.
/// </summary>
public static class SamplingFields
{
    /// <summary>The sampling fields; <c>n</c>, <c>stop</c>, logprobs and max_tokens are each route's to add.</summary>
    public static SamplingParams Read(JsonFields f, ModelCard model, ApiLimits limits) => new()
    {
        Temperature = (float)(f.Number("temperature", 0, 2) ?? 1),
        TopP = (float)(f.Number("top_p", 0, 1, minExclusive: true) ?? 1),
        // vLLM spells "off" as -1; 0 means the same here.
        TopK = (int)Math.Max(0, f.Integer("top_k", -1, model.VocabularyLimit) ?? 0),
        MinP = (float)(f.Number("min_p", 0, 1) ?? 0),
        PresencePenalty = (float)(f.Number("presence_penalty", -2, 2) ?? 0),
        FrequencyPenalty = (float)(f.Number("frequency_penalty", -2, 2) ?? 0),
        RepetitionPenalty = (float)(f.Number("repetition_penalty", 0, 2, minExclusive: true) ?? 1),
        LogitBias = ReadLogitBias(f, model, limits),
        Seed = f.Integer("seed", long.MinValue, long.MaxValue),
    };

    public static int Choices(JsonFields f, ApiLimits limits) => (int)(f.Integer("n", 1, limits.MaxChoices) ?? 1);

    /// <summary><c>stop</c>: a string or an array of strings, each non-empty and bounded.</summary>
    public static IReadOnlyList<string>? Stop(JsonFields f, ApiLimits limits)
    {
        if (f.Get("stop") is not { } v) return null;
        if (v.ValueKind == JsonValueKind.String) return [CheckStop(f.PathOf("stop"), v.GetString()!, limits)];
        var array = f.Array("stop", 0, limits.MaxStopStrings)!.Value;
        var stops = new List<string>(array.GetArrayLength());
        var i = 0;
        foreach (var item in array.EnumerateArray())
        {
            var path = $"{f.PathOf("stop")}[{i++}]";
            if (item.ValueKind != JsonValueKind.String) throw ApiException.WrongType(path, "a string", JsonFields.Kind(item));
            stops.Add(CheckStop(path, item.GetString()!, limits));
        }
        return stops.Count > 0 ? stops : null;
    }

    /// <summary><c>stream</c> and <c>stream_options.include_usage</c>; options without streaming are refused, as OpenAI does.</summary>
    public static (bool Stream, bool IncludeUsage) Streaming(JsonFields f)
    {
        var stream = f.Boolean("stream") ?? false;
        if (f.Object("stream_options") is not { } options) return (stream, false);
        if (!stream) throw ApiException.Invalid("stream_options", "stream_options is only allowed when stream is true.");
        return (true, options.Boolean("include_usage") ?? false);
    }

    private static string CheckStop(string path, string stop, ApiLimits limits)
    {
        if (stop.Length is 0 || stop.Length > limits.MaxStopLength)
            throw ApiException.Invalid(path, $"{path} must be between 1 and {limits.MaxStopLength} characters; got {stop.Length}.");
        return stop;
    }

    private static IReadOnlyDictionary<int, float>? ReadLogitBias(JsonFields f, ModelCard model, ApiLimits limits)
    {
        if (f.Object("logit_bias") is null) return null;
        var element = f.Get("logit_bias")!.Value;
        var bias = new Dictionary<int, float>();
        foreach (var entry in element.EnumerateObject())
        {
            if (bias.Count == limits.MaxLogitBiasEntries)
                throw ApiException.Invalid("logit_bias", $"logit_bias must have at most {limits.MaxLogitBiasEntries} entries; got {CountOf(element)}.", "array_above_max_length");
            var path = $"logit_bias.{entry.Name}";
            if (!int.TryParse(entry.Name, NumberStyles.None, CultureInfo.InvariantCulture, out var token) || token >= model.VocabularyLimit)
                throw ApiException.Invalid("logit_bias", $"logit_bias keys must be token ids between 0 and {model.VocabularyLimit - 1}; got '{Truncate(entry.Name)}'.");
            if (entry.Value.ValueKind != JsonValueKind.Number) throw ApiException.WrongType(path, "a number", JsonFields.Kind(entry.Value));
            if (!entry.Value.TryGetDouble(out var value) || value is not (>= -100 and <= 100))
                throw ApiException.OutOfRange(path, JsonFields.Raw(entry.Value), "between -100 and 100");
            bias[token] = (float)value;
        }
        return bias.Count > 0 ? bias : null;
    }

    private static int CountOf(JsonElement o) => o.EnumerateObject().Count();

    private static string Truncate(string s) => s.Length <= 32 ? s : s[..32] + "...";
}
