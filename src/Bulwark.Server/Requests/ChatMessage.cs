using System.Text.Json;

namespace Bulwark.Server.Requests;

/// <summary>One turn of a conversation, as the chat template sees it.</summary>
public sealed record ChatMessage(string Role, string Content, string? Name = null)
{
    /// <summary>Writes <paramref name="messages"/> as OpenAI's <c>messages</c> array (what chat templates and upstream engines read).</summary>
    public static void WriteArray(Utf8JsonWriter json, IReadOnlyList<ChatMessage> messages)
    {
        json.WriteStartArray();
        foreach (var m in messages)
        {
            json.WriteStartObject();
            json.WriteString("role", m.Role);
            json.WriteString("content", m.Content);
            if (m.Name is not null) json.WriteString("name", m.Name);
            json.WriteEndObject();
        }
        json.WriteEndArray();
    }
}
