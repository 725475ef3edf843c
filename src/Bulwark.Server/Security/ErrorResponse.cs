using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Security;

/// <summary>
/// Writes the OpenAI error shape <c>{"error":{"message","type","param","code"}}</c>. Messages may
/// quote what the client sent; anything key-shaped in them is masked, so no response carries a key.
/// </summary>
internal static class ErrorResponse
{
    public static Task WriteAsync(HttpContext context, int status, string type, string code, string message)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteStartObject("error");
            json.WriteString("message", Audit.SecretRedactor.Redact(message));
            json.WriteString("type", type);
            json.WriteNull("param");
            json.WriteString("code", code);
            json.WriteEndObject();
            json.WriteEndObject();
        }
        return context.Response.Body.WriteAsync(buffer.WrittenMemory).AsTask();
    }
}
