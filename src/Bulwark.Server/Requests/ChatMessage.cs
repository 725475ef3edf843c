using System.Text.Json;

namespace Bulwark.Server.Requests;

/// <summary>
/// One turn of a conversation, as the chat template sees it. An assistant turn may carry
/// <see cref="ToolCalls"/> (its content then often null: <see cref="NullContent"/>), a <c>tool</c> turn the
/// <see cref="ToolCallId"/> it answers.
/// </summary>
public sealed record ChatMessage(string Role, string Content, string? Name = null)
{
    public IReadOnlyList<ToolCallMessage>? ToolCalls { get; init; }

    public string? ToolCallId { get; init; }

    /// <summary>The client sent <c>"content": null</c> (templates test for it); <see cref="Content"/> is then empty.</summary>
    public bool NullContent { get; init; }

    /// <summary>
    /// Writes <paramref name="messages"/> as OpenAI's <c>messages</c> array (what chat templates and upstream engines read).
    /// <paramref name="argumentsAsObjects"/>: a call's arguments go as the JSON object they spell (what chat templates
    /// expect, as Hugging Face's convention and vLLM do), not as OpenAI's string (what an upstream expects).
    /// </summary>
    public static void WriteArray(Utf8JsonWriter json, IReadOnlyList<ChatMessage> messages, bool argumentsAsObjects = false)
    {
        json.WriteStartArray();
        foreach (var m in messages)
        {
            json.WriteStartObject();
            json.WriteString("role", m.Role);
            if (m.NullContent) json.WriteNull("content");
            else json.WriteString("content", m.Content);
            if (m.Name is not null) json.WriteString("name", m.Name);
            if (m.ToolCalls is { } calls)
            {
                json.WriteStartArray("tool_calls");
                foreach (var call in calls)
                {
                    json.WriteStartObject();
                    json.WriteString("id", call.Id);
                    json.WriteString("type", "function");
                    json.WriteStartObject("function");
                    json.WriteString("name", call.Name);
                    if (argumentsAsObjects && AsObject(call.Arguments) is { } arguments)
                    {
                        json.WritePropertyName("arguments");
                        arguments.WriteTo(json);
                    }
                    else json.WriteString("arguments", call.Arguments);
                    json.WriteEndObject();
                    json.WriteEndObject();
                }
                json.WriteEndArray();
            }
            if (m.ToolCallId is not null) json.WriteString("tool_call_id", m.ToolCallId);
            json.WriteEndObject();
        }
        json.WriteEndArray();
    }

    private static JsonElement? AsObject(string arguments)
    {
        try
        {
            using var doc = JsonDocument.Parse(arguments);
            return doc.RootElement.ValueKind == JsonValueKind.Object ? doc.RootElement.Clone() : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
