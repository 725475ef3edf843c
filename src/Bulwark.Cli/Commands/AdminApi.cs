using System.CommandLine;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace Bulwark.Cli.Commands;

/// <summary>
/// A running server's admin API as the CLI reaches it (<c>--url</c>): the operator's way to act on a
/// live server rather than on the store directly. The admin key comes from
/// <see cref="KeyVariable"/>, never a flag (flags land in shell history and process lists). Plain
/// HTTP is refused except to loopback, so the key never crosses a network in clear.
/// </summary>
internal sealed class AdminApi : IDisposable
{
    public const string KeyVariable = "BULWARK_ADMIN_KEY";

    private readonly HttpClient _http;

    private AdminApi(HttpClient http) => _http = http;

    public static Option<string?> UrlOption(bool required = false) => new("--url")
    {
        Description = $"Act through a running server's admin API at this base URL (e.g. https://bulwark.internal:8000; http only to loopback), " +
                      $"with the admin key in ${KeyVariable}." + (required ? "" : " Without it, the command acts on the store directly."),
        Required = required,
    };

    /// <summary>The server <paramref name="url"/> names, or null when it is not given (the store is used instead).</summary>
    public static AdminApi? From(ParseResult result, Option<string?> url, SecurityStoreOptions? store = null)
    {
        if (result.GetValue(url) is not { } text) return null;
        if (store is not null && (result.GetValue(store.DataDir) is not null || result.GetValue(store.Database) is not null))
            throw new CliException("--url acts through a running server; --data-dir and --database act on the store directly: give one or the other");
        return Connect(text);
    }

    public static AdminApi Connect(string url)
    {
        if (!Uri.TryCreate(url.TrimEnd('/') + "/", UriKind.Absolute, out var address) || (address.Scheme != "http" && address.Scheme != "https"))
            throw new CliException($"--url must be an http or https URL; got '{url}'");
        if (address.Scheme == "http" && !address.IsLoopback)
            throw new CliException($"--url {url} is plain HTTP to a non-loopback host; use https so the admin key is not sent in clear");
        var key = Environment.GetEnvironmentVariable(KeyVariable);
        if (string.IsNullOrWhiteSpace(key)) throw new CliException($"set {KeyVariable} to an admin key (bwa_...)");
        var http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key.Trim());
        return new AdminApi(http);
    }

    /// <summary>
    /// Sends one admin request; returns the JSON answer (default for an empty one). Any status but
    /// 2xx becomes a <see cref="CliException"/> quoting the status and the server's message.
    /// </summary>
    public async Task<JsonElement> SendAsync(HttpMethod method, string path, object? body, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, path.TrimStart('/'));
        if (body is not null) request.Content = JsonContent.Create(body);
        using var response = await _http.SendAsync(request, ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode)
            throw new CliException($"the server answered {(int)response.StatusCode}: {ErrorMessage(text, response.StatusCode)}");
        if (text.Length == 0) return default;
        using var document = JsonDocument.Parse(text);
        return document.RootElement.Clone();
    }

    private static string ErrorMessage(string body, HttpStatusCode status)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            return document.RootElement.GetProperty("error").GetProperty("message").GetString() ?? body;
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return body.Length == 0 ? status.ToString() : body.Length > 200 ? body[..200] : body;
        }
    }

    public void Dispose() => _http.Dispose();
}
