using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Bulwark.Server.Tests.Api;

/// <summary>Plain HTTP calls, for what a typed client would never send.</summary>
public static class RawHttp
{
    public static async Task<(int Status, JsonElement Body, HttpResponseMessage Response)> PostJsonAsync(HttpClient http, string path, string json, string contentType = "application/json")
    {
        var content = new StringContent(json, Encoding.UTF8);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        var response = await http.PostAsync(path, content);
        var text = await response.Content.ReadAsStringAsync();
        var body = text.Length > 0 && text.TrimStart().StartsWith('{') ? JsonDocument.Parse(text).RootElement.Clone() : default;
        return ((int)response.StatusCode, body, response);
    }

    /// <summary>The error object of an OpenAI-shaped error body, after checking it has exactly the four fields.</summary>
    public static JsonElement Error(JsonElement body)
    {
        var error = body.GetProperty("error");
        Assert.Equal(["message", "type", "param", "code"], error.EnumerateObject().Select(p => p.Name));
        return error;
    }

    /// <summary>The data payloads of a Server-Sent Events body, in order.</summary>
    public static List<string> Events(string body) =>
        body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e.StartsWith("data: ", StringComparison.Ordinal) ? e[6..] : e).ToList();
}
