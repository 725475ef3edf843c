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

    /// <summary>Sends <paramref name="utf8"/> as it is, so a body may hold bytes no string can (invalid UTF-8).</summary>
    public static async Task<(int Status, string Text, HttpResponseMessage Response)> SendBytesAsync(HttpClient http, HttpMethod method, string path, byte[] utf8)
    {
        var content = new ByteArrayContent(utf8);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var response = await http.SendAsync(new HttpRequestMessage(method, path) { Content = content });
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync(), response);
    }

    /// <summary>Sends <paramref name="json"/> chunked, without a Content-Length, so only reading the body can find its size.</summary>
    public static async Task<HttpResponseMessage> PostChunkedAsync(HttpClient http, string path, string json)
    {
        var content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(json)));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = content };
        request.Headers.TransferEncodingChunked = true;
        return await http.SendAsync(request);
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
