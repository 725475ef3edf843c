using System.Buffers;
using System.Globalization;
using System.Text.Json;
using Bulwark.Engine.Serving;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Backends.Upstream;

/// <summary>
/// The OpenAI wire format as Bulwark speaks it to an upstream: a <see cref="GenerationRequest"/> as a
/// streaming <c>/chat/completions</c> or <c>/completions</c> body (usage asked for), and one streamed
/// chunk back as choice deltas and usage. Only what the request set is sent: vLLM's extensions
/// (<c>top_k</c>, <c>min_p</c>, <c>repetition_penalty</c>) only when they differ from "off", so an
/// OpenAI-strict upstream is not handed fields it does not know.
/// </summary>
internal sealed class OpenAiWire : IUpstreamProtocol
{
    public static readonly OpenAiWire Instance = new();

    public string HealthPath => "models";

    public bool Discovers => true;

    public void Check(GenerationRequest request, string served)
    {
        if (request.Sampling.Logprobs)
            throw ApiException.Unsupported("logprobs", $"logprobs are not available for '{served}', which an upstream engine serves.");
    }

    string IUpstreamProtocol.PathOf(GenerationRequest request, bool stream) => PathOf(request);

    byte[] IUpstreamProtocol.Body(GenerationRequest request, string upstreamModel, bool stream) => Body(request, upstreamModel, stream);

    GenerationUsage? IUpstreamProtocol.Chunk(string data, GenerationRequest request, List<ChoiceDelta> deltas) =>
        Chunk(data, request.Messages is not null, request.Choices, deltas);

    GenerationUsage? IUpstreamProtocol.Whole(ReadOnlySpan<byte> body, GenerationRequest request, List<ChoiceDelta> deltas) =>
        Whole(body, request.Messages is not null, request.Choices, deltas);

    public static string PathOf(GenerationRequest request) => request.Messages is not null ? "chat/completions" : "completions";

    /// <param name="stream">Ask for a stream (with usage) or for one whole response.</param>
    public static byte[] Body(GenerationRequest request, string upstreamModel, bool stream)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var json = new Utf8JsonWriter(buffer))
        {
            var s = request.Sampling;
            json.WriteStartObject();
            json.WriteString("model", upstreamModel);
            if (request.Messages is { } messages)
            {
                json.WritePropertyName("messages");
                ChatMessage.WriteArray(json, messages);
            }
            else if (request.Prompt?.TokenIds is { } ids)
            {
                json.WriteStartArray("prompt");
                foreach (var id in ids) json.WriteNumberValue(id);
                json.WriteEndArray();
            }
            else json.WriteString("prompt", request.Prompt?.Text ?? "");
            json.WriteNumber("max_tokens", s.MaxTokens);
            json.WriteNumber("temperature", s.Temperature);
            if (s.TopP != 1f) json.WriteNumber("top_p", s.TopP);
            if (s.TopK != 0) json.WriteNumber("top_k", s.TopK);
            if (s.MinP != 0f) json.WriteNumber("min_p", s.MinP);
            if (s.PresencePenalty != 0f) json.WriteNumber("presence_penalty", s.PresencePenalty);
            if (s.FrequencyPenalty != 0f) json.WriteNumber("frequency_penalty", s.FrequencyPenalty);
            if (s.RepetitionPenalty != 1f) json.WriteNumber("repetition_penalty", s.RepetitionPenalty);
            if (s.Seed is { } seed) json.WriteNumber("seed", seed);
            if (s.N != 1) json.WriteNumber("n", s.N);
            if (s.StopStrings is { Count: > 0 } stops)
            {
                json.WriteStartArray("stop");
                foreach (var stop in stops) json.WriteStringValue(stop);
                json.WriteEndArray();
            }
            if (s.LogitBias is { Count: > 0 } bias)
            {
                json.WriteStartObject("logit_bias");
                foreach (var (token, value) in bias) json.WriteNumber(token.ToString(CultureInfo.InvariantCulture), value);
                json.WriteEndObject();
            }
            if (request.ResponseFormat is { } format)
            {
                json.WriteStartObject("response_format");
                json.WriteString("type", format.Type);
                if (format.Schema is { } schema)
                {
                    json.WriteStartObject("json_schema");
                    json.WriteString("name", "response");
                    json.WritePropertyName("schema");
                    schema.WriteTo(json);
                    json.WriteEndObject();
                }
                json.WriteEndObject();
            }
            // Other constraints go as vLLM's guided decoding fields, as the client sent them (response_format is written above;
            // a TGI grammar becomes guided_json or guided_regex).
            if (request.Constraint is { Field: not "response_format", Schema: { } guidedSchema })
            {
                json.WritePropertyName("guided_json");
                guidedSchema.WriteTo(json);
            }
            if (request.Constraint is { Pattern: { } guidedRegex }) json.WriteString("guided_regex", guidedRegex);
            if (request.Constraint is { Choices: { } guidedChoices })
            {
                json.WriteStartArray("guided_choice");
                foreach (var c in guidedChoices) json.WriteStringValue(c);
                json.WriteEndArray();
            }
            json.WriteBoolean("stream", stream);
            if (stream)
            {
                json.WriteStartObject("stream_options");
                json.WriteBoolean("include_usage", true);
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// One streamed chunk: its choices' deltas (into <paramref name="deltas"/>) and its usage, if any.
    /// A chunk naming a choice index outside the request's n, or carrying an <c>error</c> object, is
    /// a failure of the upstream (<see cref="InvalidDataException"/>).
    /// </summary>
    public static GenerationUsage? Chunk(string data, bool chat, int choices, List<ChoiceDelta> deltas)
    {
        using var document = JsonDocument.Parse(data);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw new InvalidDataException("a chunk of the upstream's stream is not a JSON object");
        if (root.TryGetProperty("error", out var error) && error.ValueKind != JsonValueKind.Null)
            throw new InvalidDataException("the upstream reported an error in the middle of its stream");
        if (root.TryGetProperty("choices", out var array) && array.ValueKind == JsonValueKind.Array)
        {
            foreach (var choice in array.EnumerateArray())
            {
                var index = choice.TryGetProperty("index", out var i) && i.TryGetInt32(out var n) ? n : 0;
                if ((uint)index >= (uint)choices) throw new InvalidDataException($"the upstream sent choice {index} of a request for {choices}");
                var text = chat
                    ? choice.TryGetProperty("delta", out var delta) && delta.ValueKind == JsonValueKind.Object && delta.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String ? content.GetString()! : ""
                    : choice.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "";
                var finish = choice.TryGetProperty("finish_reason", out var f) && f.ValueKind == JsonValueKind.String ? Finish(f.GetString()!) : (FinishReason?)null;
                if (text.Length == 0 && finish is null) continue;
                // A streamed chunk carries one token on every engine we relay; usage, when sent, corrects the count.
                deltas.Add(new ChoiceDelta(index, text, finish, GeneratedTokens: text.Length > 0 ? 1 : 0));
            }
        }
        if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object
            && usage.TryGetProperty("prompt_tokens", out var p) && p.TryGetInt32(out var prompt) && prompt >= 0
            && usage.TryGetProperty("completion_tokens", out var c) && c.TryGetInt32(out var completion) && completion >= 0)
            return new GenerationUsage(prompt, completion);
        return null;
    }

    /// <summary>
    /// A whole (non-streamed) response: each choice's text as one delta with its finish reason (a
    /// choice the upstream left without one ended at its length bound), and the usage.
    /// </summary>
    public static GenerationUsage? Whole(ReadOnlySpan<byte> utf8, bool chat, int choices, List<ChoiceDelta> deltas)
    {
        var reader = new Utf8JsonReader(utf8);
        using var document = JsonDocument.ParseValue(ref reader);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("choices", out var array) || array.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException("the upstream's response has no choices");
        var seen = new bool[choices];
        foreach (var choice in array.EnumerateArray())
        {
            var index = choice.TryGetProperty("index", out var i) && i.TryGetInt32(out var n) ? n : 0;
            if ((uint)index >= (uint)choices || seen[index]) throw new InvalidDataException($"the upstream sent choice {index} of a request for {choices}");
            seen[index] = true;
            var text = chat
                ? choice.TryGetProperty("message", out var message) && message.ValueKind == JsonValueKind.Object && message.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String ? content.GetString()! : ""
                : choice.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "";
            var finish = choice.TryGetProperty("finish_reason", out var f) && f.ValueKind == JsonValueKind.String ? Finish(f.GetString()!) : FinishReason.Length;
            // The usage below corrects this estimate (⌈UTF-8 bytes / 4⌉) whenever the upstream reports it, as OpenAI's API always does.
            deltas.Add(new ChoiceDelta(index, text, finish, GeneratedTokens: text.Length == 0 ? 0 : (System.Text.Encoding.UTF8.GetByteCount(text) + 3) / 4));
        }
        if (Array.IndexOf(seen, false) is var missing and >= 0) throw new InvalidDataException($"the upstream's response lacks choice {missing}");
        if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object
            && usage.TryGetProperty("prompt_tokens", out var p) && p.TryGetInt32(out var prompt) && prompt >= 0
            && usage.TryGetProperty("completion_tokens", out var c) && c.TryGetInt32(out var completion) && completion >= 0)
            return new GenerationUsage(prompt, completion);
        return null;
    }

    private static FinishReason Finish(string reason) => reason switch
    {
        "length" => FinishReason.Length,
        "content_filter" => FinishReason.ContentFilter,
        _ => FinishReason.Stop,
    };
}
