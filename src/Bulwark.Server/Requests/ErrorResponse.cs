using System.Text.Json;
using Bulwark.Server.Redaction;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Requests;

/// <summary>
/// Writes OpenAI's error body and status, plus <c>Retry-After</c> when the caller should come back.
/// Messages may quote what the client sent; anything key-shaped in them is masked, so no response
/// carries a key.
/// </summary>
public static class ErrorResponse
{
    public static async Task WriteAsync(HttpContext context, ApiException error)
    {
        if (context.Response.HasStarted) return;
        context.Response.Clear();
        context.Response.StatusCode = error.Status;
        if (error.RetryAfter is { } wait)
            context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        foreach (var (name, value) in error.Headers ?? EmptyHeaders) context.Response.Headers[name] = value;
        context.Response.ContentType = "application/json";
        await context.Response.Body.WriteAsync(Serialize(error));
    }

    /// <summary>The error object alone, UTF-8 JSON; also used as an SSE event when a stream fails midway.</summary>
    public static byte[] Serialize(ApiException error)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteStartObject("error");
            // A key pasted into any field (the model name, say) must not come back in an error message.
            json.WriteString("message", SecretRedactor.Redact(error.Message));
            json.WriteString("type", error.Type);
            if (error.Param is null) json.WriteNull("param"); else json.WriteString("param", error.Param);
            if (error.Code is null) json.WriteNull("code"); else json.WriteString("code", error.Code);
            json.WriteEndObject();
            json.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    private static readonly Dictionary<string, string> EmptyHeaders = [];
}
