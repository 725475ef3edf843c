using System.Text;
using System.Text.Json;
using Bulwark.Engine.Serving;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Api;

/// <summary>Which OpenAI response shape a request is answered in.</summary>
public enum ResponseKind
{
    /// <summary><c>/v1/chat/completions</c>: <c>message</c>/<c>delta</c> objects, logprobs as <c>content</c> entries.</summary>
    Chat,
    /// <summary><c>/v1/completions</c>: <c>text</c>, legacy logprobs lists.</summary>
    Text,
}

/// <summary>
/// Writes OpenAI's response objects for chat and text completions: the whole response, the
/// streaming chunks (<c>chat.completion.chunk</c> / <c>text_completion</c>) and the usage chunk.
/// Field order and nulls follow OpenAI's own responses so strict clients parse them.
/// </summary>
public sealed class CompletionResponseWriter(ResponseKind kind, GenerationRequest request, string id, long created)
{
    public const string SystemFingerprint = "bulwark";

    /// <summary>The finished choices of a non-streaming request.</summary>
    public sealed class Choice
    {
        public readonly StringBuilder Text = new();
        public readonly List<GeneratedToken> Tokens = [];
        public FinishReason? Finish;
        public FormatCheck? Format;
        public bool CalledTools;

        /// <summary>The choice's tool calls, by index: id, name and the arguments joined from their pieces.</summary>
        public readonly List<(string Id, string Name, StringBuilder Arguments)> ToolCalls = [];

        public void Add(ToolCallDelta piece)
        {
            while (ToolCalls.Count <= piece.Index) ToolCalls.Add(("", "", new StringBuilder()));
            var (id, name, arguments) = ToolCalls[piece.Index];
            ToolCalls[piece.Index] = (piece.Id ?? id, piece.Name ?? name, arguments.Append(piece.Arguments));
        }
    }

    public void WriteResponse(Utf8JsonWriter json, IReadOnlyList<Choice> choices, int promptTokens, int completionTokens)
    {
        json.WriteStartObject();
        WriteHeader(json, kind == ResponseKind.Chat ? "chat.completion" : "text_completion");
        json.WriteStartArray("choices");
        for (var i = 0; i < choices.Count; i++)
        {
            var c = choices[i];
            json.WriteStartObject();
            json.WriteNumber("index", i);
            if (kind == ResponseKind.Chat)
            {
                json.WriteStartObject("message");
                json.WriteString("role", "assistant");
                // With tool calls and no text, OpenAI's content is null.
                if (c.ToolCalls.Count > 0 && c.Text.Length == 0) json.WriteNull("content");
                else json.WriteString("content", c.Text.ToString());
                json.WriteNull("refusal");
                if (c.ToolCalls.Count > 0)
                {
                    json.WriteStartArray("tool_calls");
                    foreach (var (callId, name, arguments) in c.ToolCalls)
                    {
                        json.WriteStartObject();
                        json.WriteString("id", callId);
                        json.WriteString("type", "function");
                        json.WriteStartObject("function");
                        json.WriteString("name", name);
                        json.WriteString("arguments", arguments.ToString());
                        json.WriteEndObject();
                        json.WriteEndObject();
                    }
                    json.WriteEndArray();
                }
                json.WriteEndObject();
            }
            else json.WriteString("text", c.Text.ToString());
            WriteLogprobs(json, c.Tokens, 0);
            json.WriteString("finish_reason", Name(c.Finish ?? FinishReason.Length, c.CalledTools));
            WriteStopReason(json, c.Finish);
            WriteFormatCheck(json, c.Format);
            json.WriteEndObject();
        }
        json.WriteEndArray();
        WriteUsage(json, promptTokens, completionTokens);
        json.WriteEndObject();
    }

    /// <summary>One streamed delta. <paramref name="first"/> marks a choice's first chunk, which carries the role.</summary>
    public void WriteChunk(Utf8JsonWriter json, ChoiceDelta delta, bool first, int textOffset)
    {
        json.WriteStartObject();
        WriteHeader(json, kind == ResponseKind.Chat ? "chat.completion.chunk" : "text_completion");
        json.WriteStartArray("choices");
        json.WriteStartObject();
        json.WriteNumber("index", delta.Index);
        if (kind == ResponseKind.Chat)
        {
            json.WriteStartObject("delta");
            if (first) json.WriteString("role", "assistant");
            if (delta.Text.Length > 0 || first) json.WriteString("content", delta.Text);
            json.WriteEndObject();
        }
        else json.WriteString("text", delta.Text);
        WriteLogprobs(json, delta.Tokens ?? [], textOffset);
        if (delta.Finish is { } finish) json.WriteString("finish_reason", Name(finish, delta.CalledTools)); else json.WriteNull("finish_reason");
        WriteStopReason(json, delta.Finish);
        WriteFormatCheck(json, delta.Format);
        json.WriteEndObject();
        json.WriteEndArray();
        if (request.IncludeUsage) json.WriteNull("usage");
        json.WriteEndObject();
    }

    /// <summary>
    /// One piece of a tool call as OpenAI streams it: the opening piece (<paramref name="piece"/> with an id) carries
    /// <c>index</c>, <c>id</c>, <c>type</c>, <c>function.name</c> and empty <c>arguments</c>; later pieces only
    /// <c>index</c> and <c>function.arguments</c>. <paramref name="first"/>: the choice's first chunk (role, content null).
    /// </summary>
    public void WriteToolCallChunk(Utf8JsonWriter json, int choice, ToolCallDelta piece, bool first)
    {
        json.WriteStartObject();
        WriteHeader(json, "chat.completion.chunk");
        json.WriteStartArray("choices");
        json.WriteStartObject();
        json.WriteNumber("index", choice);
        json.WriteStartObject("delta");
        if (first)
        {
            json.WriteString("role", "assistant");
            json.WriteNull("content");
        }
        json.WriteStartArray("tool_calls");
        json.WriteStartObject();
        json.WriteNumber("index", piece.Index);
        if (piece.Id is not null)
        {
            json.WriteString("id", piece.Id);
            json.WriteString("type", "function");
        }
        json.WriteStartObject("function");
        if (piece.Name is not null) json.WriteString("name", piece.Name);
        json.WriteString("arguments", piece.Arguments);
        json.WriteEndObject();
        json.WriteEndObject();
        json.WriteEndArray();
        json.WriteEndObject();
        json.WriteNull("logprobs");
        json.WriteNull("finish_reason");
        json.WriteEndObject();
        json.WriteEndArray();
        if (request.IncludeUsage) json.WriteNull("usage");
        json.WriteEndObject();
    }

    /// <summary>The last chunk when <c>stream_options.include_usage</c> is set: no choices, only usage.</summary>
    public void WriteUsageChunk(Utf8JsonWriter json, int promptTokens, int completionTokens)
    {
        json.WriteStartObject();
        WriteHeader(json, kind == ResponseKind.Chat ? "chat.completion.chunk" : "text_completion");
        json.WriteStartArray("choices");
        json.WriteEndArray();
        WriteUsage(json, promptTokens, completionTokens);
        json.WriteEndObject();
    }

    /// <summary>
    /// Bulwark's extension on a finished choice of a request with a JSON <c>response_format</c>:
    /// <c>"format_check": {"valid": true}</c> or <c>{"valid": false, "error": "$.age: expected integer; got string"}</c>.
    /// </summary>
    private static void WriteFormatCheck(Utf8JsonWriter json, FormatCheck? check)
    {
        if (check is null) return;
        json.WriteStartObject("format_check");
        json.WriteBoolean("valid", check.Valid);
        if (check.Error is not null) json.WriteString("error", check.Error);
        json.WriteEndObject();
    }

    /// <summary>vLLM's extension field, written only for a choice the request's deadline ended: <c>"stop_reason": "deadline"</c>.</summary>
    private static void WriteStopReason(Utf8JsonWriter json, FinishReason? finish)
    {
        if (finish == FinishReason.Deadline) json.WriteString("stop_reason", "deadline");
    }

    /// <summary>OpenAI's name of a finish reason; a choice that called tools and stopped ends with <c>tool_calls</c>.</summary>
    public static string Name(FinishReason finish, bool calledTools) => calledTools && finish == FinishReason.Stop ? "tool_calls" : Name(finish);

    public static string Name(FinishReason finish) => finish switch
    {
        FinishReason.Length or FinishReason.Deadline => "length",
        FinishReason.ContentFilter => "content_filter",
        _ => "stop",
    };

    private void WriteHeader(Utf8JsonWriter json, string objectName)
    {
        json.WriteString("id", id);
        json.WriteString("object", objectName);
        json.WriteNumber("created", created);
        json.WriteString("model", request.Model);
        json.WriteString("system_fingerprint", SystemFingerprint);
    }

    private static void WriteUsage(Utf8JsonWriter json, int promptTokens, int completionTokens)
    {
        json.WriteStartObject("usage");
        json.WriteNumber("prompt_tokens", promptTokens);
        json.WriteNumber("completion_tokens", completionTokens);
        json.WriteNumber("total_tokens", promptTokens + completionTokens);
        json.WriteEndObject();
    }

    private void WriteLogprobs(Utf8JsonWriter json, IReadOnlyList<GeneratedToken> tokens, int textOffset)
    {
        if (request.TopLogprobs is null)
        {
            json.WriteNull("logprobs");
            return;
        }
        if (kind == ResponseKind.Chat) WriteChatLogprobs(json, tokens);
        else WriteLegacyLogprobs(json, tokens, textOffset);
    }

    private static void WriteChatLogprobs(Utf8JsonWriter json, IReadOnlyList<GeneratedToken> tokens)
    {
        json.WriteStartObject("logprobs");
        json.WriteStartArray("content");
        foreach (var t in tokens)
        {
            if (t.IsClosingOnly) continue;
            json.WriteStartObject();
            WriteTokenFields(json, t.Text, t.Logprob);
            json.WriteStartArray("top_logprobs");
            foreach (var alt in t.TopLogprobs ?? [])
            {
                json.WriteStartObject();
                WriteTokenFields(json, alt.Text, alt.Logprob);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }
        json.WriteEndArray();
        json.WriteNull("refusal");
        json.WriteEndObject();
    }

    private static void WriteTokenFields(Utf8JsonWriter json, string text, float logprob)
    {
        json.WriteString("token", text);
        json.WriteNumber("logprob", logprob);
        json.WriteStartArray("bytes");
        foreach (var b in Encoding.UTF8.GetBytes(text)) json.WriteNumberValue(b);
        json.WriteEndArray();
    }

    /// <summary>The <c>/v1/completions</c> shape: parallel lists of tokens, logprobs, alternatives and text offsets.</summary>
    private static void WriteLegacyLogprobs(Utf8JsonWriter json, IReadOnlyList<GeneratedToken> tokens, int textOffset)
    {
        json.WriteStartObject("logprobs");
        json.WriteStartArray("tokens");
        foreach (var t in tokens) if (!t.IsClosingOnly) json.WriteStringValue(t.Text);
        json.WriteEndArray();
        json.WriteStartArray("token_logprobs");
        foreach (var t in tokens) if (!t.IsClosingOnly) json.WriteNumberValue(t.Logprob);
        json.WriteEndArray();
        json.WriteStartArray("top_logprobs");
        foreach (var t in tokens)
        {
            if (t.IsClosingOnly) continue;
            json.WriteStartObject();
            foreach (var alt in t.TopLogprobs ?? [])
                json.WriteNumber(alt.Text, alt.Logprob);
            json.WriteEndObject();
        }
        json.WriteEndArray();
        json.WriteStartArray("text_offset");
        var offset = textOffset;
        foreach (var t in tokens)
        {
            if (t.IsClosingOnly) continue;
            json.WriteNumberValue(offset);
            offset += t.Text.Length;
        }
        json.WriteEndArray();
        json.WriteEndObject();
    }
}
