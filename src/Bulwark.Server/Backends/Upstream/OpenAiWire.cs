using System.Buffers;
using System.Globalization;
using System.Text.Json;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Sampling;
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

    /// <summary>The OpenAI protocol carries every field of the request vocabulary (logprobs as texts, without ids).</summary>
    public void Check(GenerationRequest request, string served)
    {
    }

    string IUpstreamProtocol.PathOf(GenerationRequest request, bool stream) => PathOf(request);

    byte[] IUpstreamProtocol.Body(GenerationRequest request, string upstreamModel, bool stream) => Body(request, upstreamModel, stream);

    GenerationUsage? IUpstreamProtocol.Chunk(string data, GenerationRequest request, List<ChoiceDelta> deltas) =>
        Chunk(data, request.Messages is not null, request.Choices, deltas, request.TopLogprobs);

    GenerationUsage? IUpstreamProtocol.Whole(ReadOnlySpan<byte> body, GenerationRequest request, List<ChoiceDelta> deltas) =>
        Whole(body, request.Messages is not null, request.Choices, deltas, request.TopLogprobs);

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
            if (request.TopLogprobs is { } top)
            {
                // Chat asks with a flag and a count; the legacy completions API with the count alone.
                if (request.Messages is not null)
                {
                    json.WriteBoolean("logprobs", true);
                    json.WriteNumber("top_logprobs", top);
                }
                else json.WriteNumber("logprobs", top);
            }
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
            if (request.Tools is { } tools) WriteTools(json, tools);
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

    /// <summary>The tools as the client sent them, and its tool choice: the upstream renders, enforces and parses calls itself.</summary>
    private static void WriteTools(Utf8JsonWriter json, ToolRequest tools)
    {
        json.WritePropertyName("tools");
        tools.Json.WriteTo(json);
        if (tools.Choice == ToolChoice.Function)
        {
            json.WriteStartObject("tool_choice");
            json.WriteString("type", "function");
            json.WriteStartObject("function");
            json.WriteString("name", tools.Function);
            json.WriteEndObject();
            json.WriteEndObject();
        }
        else json.WriteString("tool_choice", tools.Choice switch { ToolChoice.None => "none", ToolChoice.Required => "required", _ => "auto" });
        if (!tools.Parallel) json.WriteBoolean("parallel_tool_calls", false);
    }

    /// <summary>Calls an upstream may number in one choice; an index past it is a failure of the upstream, not a list to grow.</summary>
    private const int MaxToolCallIndex = 1024;

    /// <summary>A choice's <c>tool_calls</c> (a stream's <c>delta</c> pieces or a whole <c>message</c>'s calls) as pieces; null when there are none.</summary>
    private static List<ToolCallDelta>? ToolCalls(JsonElement holder)
    {
        if (holder.ValueKind != JsonValueKind.Object || !holder.TryGetProperty("tool_calls", out var calls) || calls.ValueKind != JsonValueKind.Array || calls.GetArrayLength() == 0)
            return null;
        var pieces = new List<ToolCallDelta>(calls.GetArrayLength());
        var position = 0;
        foreach (var call in calls.EnumerateArray())
        {
            if (call.ValueKind != JsonValueKind.Object) throw new InvalidDataException("the upstream sent a tool call that is not an object");
            // A whole message's calls may leave out their index: their position is it.
            var index = call.TryGetProperty("index", out var i) && i.ValueKind == JsonValueKind.Number ? (i.TryGetInt32(out var n) ? n : -1) : position;
            if ((uint)index >= MaxToolCallIndex) throw new InvalidDataException($"the upstream sent tool call index {index}");
            var function = call.TryGetProperty("function", out var f) && f.ValueKind == JsonValueKind.Object ? f : default;
            pieces.Add(new ToolCallDelta(index, StringOf(call, "id"), function.ValueKind == JsonValueKind.Object ? StringOf(function, "name") : null,
                function.ValueKind == JsonValueKind.Object ? StringOf(function, "arguments") ?? "" : ""));
            position++;
        }
        return pieces;

        static string? StringOf(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
    }

    /// <summary>
    /// One streamed chunk: its choices' deltas (into <paramref name="deltas"/>) and its usage, if any.
    /// A chunk naming a choice index outside the request's n, or carrying an <c>error</c> object, is
    /// a failure of the upstream (<see cref="InvalidDataException"/>).
    /// </summary>
    /// <param name="topLogprobs">The alternatives per token the request asked for; null: no logprobs asked, none read.</param>
    public static GenerationUsage? Chunk(string data, bool chat, int choices, List<ChoiceDelta> deltas, int? topLogprobs = null)
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
                var tokens = topLogprobs is { } k ? Logprobs(choice, chat, k) : null;
                var calls = chat && choice.TryGetProperty("delta", out var piece) ? ToolCalls(piece) : null;
                if (text.Length == 0 && finish is null && tokens is not { Count: > 0 } && calls is null) continue;
                // Without logprobs a streamed chunk is counted as one token (every engine we relay sends one per
                // chunk); with them, the tokens listed. Usage, when sent, corrects the count.
                deltas.Add(new ChoiceDelta(index, text, finish, tokens, GeneratedTokens: tokens?.Count ?? (text.Length > 0 || calls is not null ? 1 : 0)) { ToolCalls = calls });
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
    public static GenerationUsage? Whole(ReadOnlySpan<byte> utf8, bool chat, int choices, List<ChoiceDelta> deltas, int? topLogprobs = null)
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
            var tokens = topLogprobs is { } k ? Logprobs(choice, chat, k) : null;
            var calls = chat && choice.TryGetProperty("message", out var whole) ? ToolCalls(whole) : null;
            var written = System.Text.Encoding.UTF8.GetByteCount(text) + (calls?.Sum(c => System.Text.Encoding.UTF8.GetByteCount(c.Arguments)) ?? 0);
            // The usage below corrects this estimate (the tokens listed, else ⌈UTF-8 bytes / 4⌉) whenever the
            // upstream reports it, as OpenAI's API always does.
            deltas.Add(new ChoiceDelta(index, text, finish, tokens, GeneratedTokens: tokens?.Count ?? (written + 3) / 4) { ToolCalls = calls });
        }
        if (Array.IndexOf(seen, false) is var missing and >= 0) throw new InvalidDataException($"the upstream's response lacks choice {missing}");
        if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object
            && usage.TryGetProperty("prompt_tokens", out var p) && p.TryGetInt32(out var prompt) && prompt >= 0
            && usage.TryGetProperty("completion_tokens", out var c) && c.TryGetInt32(out var completion) && completion >= 0)
            return new GenerationUsage(prompt, completion);
        return null;
    }

    /// <summary>
    /// A choice's <c>logprobs</c>: chat's <c>content</c> list of <c>{token, logprob, top_logprobs}</c>, or the
    /// legacy parallel lists <c>tokens</c>, <c>token_logprobs</c>, <c>top_logprobs</c> (maps of text to logprob).
    /// Ids are unknown (<see cref="GeneratedToken.UnknownId"/>): the protocol carries texts. At most
    /// <paramref name="top"/> alternatives are kept per token (an engine may send more than asked). Null when
    /// the upstream sent none.
    /// </summary>
    /// <exception cref="InvalidDataException">The logprobs are not in either shape.</exception>
    private static List<GeneratedToken>? Logprobs(JsonElement choice, bool chat, int top)
    {
        if (!choice.TryGetProperty("logprobs", out var logprobs) || logprobs.ValueKind == JsonValueKind.Null) return null;
        if (logprobs.ValueKind != JsonValueKind.Object) throw Malformed();
        var tokens = new List<GeneratedToken>();
        if (chat)
        {
            if (!logprobs.TryGetProperty("content", out var content) || content.ValueKind == JsonValueKind.Null) return tokens;
            if (content.ValueKind != JsonValueKind.Array) throw Malformed();
            foreach (var entry in content.EnumerateArray())
            {
                var (text, logprob) = TokenOf(entry);
                TokenLogprob[]? alternatives = null;
                if (entry.TryGetProperty("top_logprobs", out var alts) && alts.ValueKind == JsonValueKind.Array && top > 0)
                {
                    var kept = new List<TokenLogprob>(Math.Min(top, alts.GetArrayLength()));
                    foreach (var alt in alts.EnumerateArray())
                    {
                        if (kept.Count == top) break;
                        var (altText, altLogprob) = TokenOf(alt);
                        kept.Add(new TokenLogprob(GeneratedToken.UnknownId, altLogprob, altText));
                    }
                    alternatives = [.. kept];
                }
                tokens.Add(new GeneratedToken(GeneratedToken.UnknownId, text, logprob, alternatives));
            }
            return tokens;
        }
        if (!logprobs.TryGetProperty("tokens", out var texts) || texts.ValueKind != JsonValueKind.Array
            || !logprobs.TryGetProperty("token_logprobs", out var values) || values.ValueKind != JsonValueKind.Array
            || values.GetArrayLength() != texts.GetArrayLength())
            throw Malformed();
        var tops = logprobs.TryGetProperty("top_logprobs", out var t) && t.ValueKind == JsonValueKind.Array && t.GetArrayLength() == texts.GetArrayLength() ? t : default;
        for (var i = 0; i < texts.GetArrayLength(); i++)
        {
            if (texts[i].ValueKind != JsonValueKind.String) throw Malformed();
            TokenLogprob[]? alternatives = null;
            if (tops.ValueKind == JsonValueKind.Array && tops[i].ValueKind == JsonValueKind.Object && top > 0)
            {
                var kept = new List<TokenLogprob>();
                foreach (var alt in tops[i].EnumerateObject())
                {
                    if (kept.Count == top) break;
                    kept.Add(new TokenLogprob(GeneratedToken.UnknownId, LogprobOf(alt.Value), alt.Name));
                }
                alternatives = [.. kept];
            }
            tokens.Add(new GeneratedToken(GeneratedToken.UnknownId, texts[i].GetString()!, LogprobOf(values[i]), alternatives));
        }
        return tokens;

        static (string Text, float Logprob) TokenOf(JsonElement entry) =>
            entry.ValueKind == JsonValueKind.Object && entry.TryGetProperty("token", out var token) && token.ValueKind == JsonValueKind.String
                && entry.TryGetProperty("logprob", out var logprob)
                ? (token.GetString()!, LogprobOf(logprob))
                : throw Malformed();

        // A log-probability is a number at most 0; an engine's stand-in for minus infinity (vLLM: -9999) is kept as sent.
        static float LogprobOf(JsonElement value) =>
            value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out var d) && d <= 0 && double.IsFinite(d) ? (float)d : throw Malformed();

        static InvalidDataException Malformed() => new("the upstream's logprobs are in neither OpenAI shape");
    }

    private static FinishReason Finish(string reason) => reason switch
    {
        "length" => FinishReason.Length,
        "content_filter" => FinishReason.ContentFilter,
        _ => FinishReason.Stop,
    };
}
