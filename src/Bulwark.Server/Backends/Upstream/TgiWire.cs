using System.Buffers;
using System.Text.Json;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Backends.Upstream;

/// <summary>
/// Text Generation Inference's native protocol toward an upstream: <c>POST /generate</c> (whole) and
/// <c>/generate_stream</c> (events of one token each, the last with <c>details</c>). TGI takes one
/// text prompt and one choice, so chat messages, token-id prompts, n &gt; 1 and the sampling fields it
/// has no parameter for are refused with a 400 naming the field (chat needs TGI's Messages API: the
/// <c>openai</c> protocol on its <c>/v1</c>). JSON output asks for TGI's <c>grammar</c>. TGI reports
/// generated tokens, not prompt tokens: the prompt keeps Bulwark's estimate.
/// </summary>
internal sealed class TgiWire : IUpstreamProtocol
{
    public static readonly TgiWire Instance = new();

    public string HealthPath => "health";

    public bool Discovers => false;

    public void Check(GenerationRequest request, string served)
    {
        var s = request.Sampling;
        string? field = request.Messages is not null ? "messages"
            : request.Prompt?.TokenIds is not null ? "prompt"
            : s.N != 1 ? "n"
            : s.MinP != 0 ? "min_p"
            : s.PresencePenalty != 0 ? "presence_penalty"
            : s.LogitBias is { Count: > 0 } ? "logit_bias"
            : null;
        if (field is null) return;
        var why = field switch
        {
            "messages" => "chat messages: use /v1/completions with a prompt, or serve it through the engine's OpenAI-compatible Messages API (protocol openai)",
            "prompt" => "a prompt of token ids: send text",
            _ => field,
        };
        throw ApiException.Unsupported(field, $"'{served}' is served by a TGI engine over its native protocol, which does not take {why}.");
    }

    public string PathOf(GenerationRequest request, bool stream) => stream ? "generate_stream" : "generate";

    public byte[] Body(GenerationRequest request, string upstreamModel, bool stream)
    {
        var s = request.Sampling;
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("inputs", request.Prompt?.Text ?? "");
            json.WriteStartObject("parameters");
            json.WriteNumber("max_new_tokens", s.MaxTokens);
            var sample = s.Temperature > 0;
            json.WriteBoolean("do_sample", sample);
            if (sample) json.WriteNumber("temperature", s.Temperature);
            // TGI wants top_p strictly below 1; 1 means "off" here anyway.
            if (s.TopP < 1f) json.WriteNumber("top_p", s.TopP);
            if (s.TopK > 0) json.WriteNumber("top_k", s.TopK);
            if (s.RepetitionPenalty != 1f) json.WriteNumber("repetition_penalty", s.RepetitionPenalty);
            if (s.FrequencyPenalty != 0f) json.WriteNumber("frequency_penalty", s.FrequencyPenalty);
            if (s.Seed is { } seed) json.WriteNumber("seed", unchecked((ulong)seed));
            if (s.StopStrings is { Count: > 0 } stops)
            {
                json.WriteStartArray("stop");
                foreach (var stop in stops) json.WriteStringValue(stop);
                json.WriteEndArray();
            }
            if (request.Constraint is { Pattern: { } pattern })
            {
                json.WriteStartObject("grammar");
                json.WriteString("type", "regex");
                json.WriteString("value", pattern);
                json.WriteEndObject();
            }
            else if (request.Constraint is { Schema: { } constraintSchema } && request.ResponseFormat is null)
            {
                json.WriteStartObject("grammar");
                json.WriteString("type", "json");
                json.WritePropertyName("value");
                constraintSchema.WriteTo(json);
                json.WriteEndObject();
            }
            else if (request.ResponseFormat is { } format)
            {
                json.WriteStartObject("grammar");
                json.WriteString("type", "json");
                json.WritePropertyName("value");
                if (format.Schema is { } schema) schema.WriteTo(json);
                else
                {
                    json.WriteStartObject();
                    json.WriteString("type", "object");
                    json.WriteEndObject();
                }
                json.WriteEndObject();
            }
            json.WriteBoolean("details", true);
            if (request.TopLogprobs is > 0 and var top) json.WriteNumber("top_n_tokens", top);
            json.WriteEndObject();
            json.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    public GenerationUsage? Chunk(string data, GenerationRequest request, List<ChoiceDelta> deltas)
    {
        using var document = JsonDocument.Parse(data);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw new InvalidDataException("an event of the upstream's stream is not a JSON object");
        if (root.TryGetProperty("error", out var error) && error.ValueKind != JsonValueKind.Null)
            throw new InvalidDataException("the upstream reported an error in the middle of its stream");
        var text = "";
        var counted = 0;
        GeneratedToken[]? tokens = null;
        if (root.TryGetProperty("token", out var token) && token.ValueKind == JsonValueKind.Object)
        {
            counted = 1;
            // A special token (end of sequence) ends the text; its own text is never shown, nor listed in logprobs.
            var special = token.TryGetProperty("special", out var sp) && sp.ValueKind == JsonValueKind.True;
            if (!special && token.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String) text = t.GetString()!;
            if (request.TopLogprobs is { } k && !special)
                tokens = [TokenOf(token, text, root.TryGetProperty("top_tokens", out var top) ? top : default, k)];
        }
        var (finish, usage) = Details(root);
        if (text.Length > 0 || finish is not null || counted > 0)
            deltas.Add(new ChoiceDelta(0, text, finish?.Reason, tokens, GeneratedTokens: counted) { StopStringMatched = finish?.StopString ?? false });
        return usage;
    }

    public GenerationUsage? Whole(ReadOnlySpan<byte> body, GenerationRequest request, List<ChoiceDelta> deltas)
    {
        var reader = new Utf8JsonReader(body);
        using var document = JsonDocument.ParseValue(ref reader);
        var root = document.RootElement;
        // TGI answers /generate with one object, or a list of one when the request was batched.
        if (root.ValueKind == JsonValueKind.Array && root.GetArrayLength() == 1) root = root[0];
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("generated_text", out var generated) || generated.ValueKind != JsonValueKind.String)
            throw new InvalidDataException("the upstream's response has no generated_text");
        var (finish, usage) = Details(root);
        var text = generated.GetString()!;
        var tokens = request.TopLogprobs is { } k ? DetailTokens(root, k) : null;
        deltas.Add(new ChoiceDelta(0, text, finish?.Reason ?? FinishReason.Length, tokens,
            GeneratedTokens: usage?.CompletionTokens ?? tokens?.Count ?? (System.Text.Encoding.UTF8.GetByteCount(text) + 3) / 4)
        {
            StopStringMatched = finish?.StopString ?? false,
        });
        return usage;
    }

    /// <summary>
    /// The generated tokens of a whole answer's <c>details</c> (<c>tokens</c>, and <c>top_tokens</c> when
    /// alternatives were asked for), special ones left out as the stream leaves them out. Null when the
    /// upstream listed none.
    /// </summary>
    private static List<GeneratedToken>? DetailTokens(JsonElement root, int top)
    {
        if (!root.TryGetProperty("details", out var details) || details.ValueKind != JsonValueKind.Object
            || !details.TryGetProperty("tokens", out var list) || list.ValueKind != JsonValueKind.Array)
            return null;
        var tops = details.TryGetProperty("top_tokens", out var t) && t.ValueKind == JsonValueKind.Array && t.GetArrayLength() == list.GetArrayLength() ? t : default;
        var tokens = new List<GeneratedToken>(list.GetArrayLength());
        for (var i = 0; i < list.GetArrayLength(); i++)
        {
            var token = list[i];
            if (token.ValueKind != JsonValueKind.Object) throw Malformed();
            if (token.TryGetProperty("special", out var sp) && sp.ValueKind == JsonValueKind.True) continue;
            var text = token.TryGetProperty("text", out var x) && x.ValueKind == JsonValueKind.String ? x.GetString()! : throw Malformed();
            tokens.Add(TokenOf(token, text, tops.ValueKind == JsonValueKind.Array ? tops[i] : default, top));
        }
        return tokens;
    }

    /// <summary>One of TGI's <c>Token</c> objects (<c>id</c>, <c>logprob</c>) with up to <paramref name="top"/> of its alternatives.</summary>
    private static GeneratedToken TokenOf(JsonElement token, string text, JsonElement alternatives, int top)
    {
        var id = token.TryGetProperty("id", out var i) && i.TryGetInt32(out var n) && n >= 0 ? n : GeneratedToken.UnknownId;
        TokenLogprob[]? kept = null;
        if (top > 0 && alternatives.ValueKind == JsonValueKind.Array)
        {
            var list = new List<TokenLogprob>(Math.Min(top, alternatives.GetArrayLength()));
            foreach (var alt in alternatives.EnumerateArray())
            {
                if (list.Count == top) break;
                if (alt.ValueKind != JsonValueKind.Object || !alt.TryGetProperty("text", out var altText) || altText.ValueKind != JsonValueKind.String) throw Malformed();
                var altId = alt.TryGetProperty("id", out var a) && a.TryGetInt32(out var m) && m >= 0 ? m : GeneratedToken.UnknownId;
                list.Add(new TokenLogprob(altId, LogprobOf(alt), altText.GetString()!));
            }
            kept = [.. list];
        }
        return new GeneratedToken(id, text, LogprobOf(token), kept);
    }

    /// <summary>A token's <c>logprob</c>: a number at most 0, or null (TGI sends null for tokens it did not score), read as 0.</summary>
    private static float LogprobOf(JsonElement token) =>
        !token.TryGetProperty("logprob", out var value) || value.ValueKind == JsonValueKind.Null ? 0f
        : value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out var d) && d <= 0 && double.IsFinite(d) ? (float)d
        : throw Malformed();

    private static InvalidDataException Malformed() => new("the upstream's token details are not TGI's shape");

    /// <summary>The finish reason and generated-token count of a <c>details</c> object (TGI names <c>eos_token</c>, <c>stop_sequence</c>, <c>length</c>).</summary>
    private static ((FinishReason Reason, bool StopString)? Finish, GenerationUsage? Usage) Details(JsonElement root)
    {
        if (!root.TryGetProperty("details", out var details) || details.ValueKind != JsonValueKind.Object) return (null, null);
        (FinishReason, bool)? finish = details.TryGetProperty("finish_reason", out var f) && f.ValueKind == JsonValueKind.String
            ? f.GetString() switch
            {
                "length" => (FinishReason.Length, false),
                "stop_sequence" => (FinishReason.Stop, true),
                _ => (FinishReason.Stop, false),
            }
            : null;
        GenerationUsage? usage = details.TryGetProperty("generated_tokens", out var g) && g.TryGetInt32(out var n) && n >= 0 ? new GenerationUsage(-1, n) : null;
        return (finish, usage);
    }
}
