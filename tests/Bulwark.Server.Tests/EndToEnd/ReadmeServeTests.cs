using System.Text.Json;
using System.Text.RegularExpressions;
using Bulwark.Server.Hosting;
using Bulwark.Testing;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Tests.EndToEnd;

/// <summary>
/// The README's promise: <c>./bulwark serve</c> with no model serves the demo model, and its curl
/// examples work as printed. Starts serve's own composition (<see cref="ServeHost"/>, default
/// loader, real engine) on 127.0.0.1 and sends every curl line of the README's Serving section.
/// </summary>
public sealed class ReadmeServeTests
{
    [Fact]
    public async Task ReadmeCurlExamplesWorkAgainstTheDemoModel()
    {
        var readme = await File.ReadAllTextAsync(Path.Combine(Fixtures.RepositoryRoot, "README.md"));
        Assert.Contains("./bulwark serve ", readme);
        var builder = BulwarkServer.CreateBuilder([], new Dictionary<string, string?>
        {
            ["Bulwark:Server:Port"] = "0",
            [ServerSettings.DataDirKey] = Fixtures.NewTempDirectory("readme"),
            ["Bulwark:Serve:KvCacheMemory"] = "64MiB",
        });
        builder.Logging.ClearProviders();
        var output = new StringWriter();
        await using var serve = await ServeHost.StartAsync(builder, output);
        Assert.Equal("bulwark-demo", serve.Backend!.Model.Id);
        Assert.Contains("NOTICE     bulwark-demo has random weights", output.ToString());

        var variables = new Dictionary<string, string> { ["ADMIN_KEY"] = serve.InitialAdminKey!.Key };
        var port = serve.Address.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(2) };
        var seen = new HashSet<string>();
        var lines = ReadmeCurl.Lines(readme, "## Serving");
        Assert.True(lines.Count >= 7, $"expected the key and six API examples, found {lines.Count}");
        foreach (var line in lines)
        {
            // Parsed as it is reached: earlier lines set the variables later ones use.
            var c = ReadmeCurl.Parse(line, variables);
            var url = c.Url.Replace("127.0.0.1:8000", "127.0.0.1:" + port, StringComparison.Ordinal);
            using var request = new HttpRequestMessage(c.Method, url);
            if (c.Body is not null) request.Content = new StringContent(c.Body);
            foreach (var (name, value) in c.Headers)
                if (name == "Content-Type") request.Content!.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse(value);
                else request.Headers.Add(name, value);
            using var response = await http.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.IsSuccessStatusCode, $"README line answered {(int)response.StatusCode}: {c.Line}\n{text}");
            var path = new Uri(url).AbsolutePath;
            if (c.AssignsTo is not null)
            {
                Assert.Equal("sed -E 's/.*\"key\":\"([^\"]+)\".*/\\1/'", c.Pipe);
                variables[c.AssignsTo] = Regex.Match(text, "\"key\":\"([^\"]+)\"").Groups[1].Value;
                Assert.StartsWith("bwk_", variables[c.AssignsTo]);
                continue;
            }
            seen.Add(path + (c.Body?.Contains("\"stream\":true") == true ? " stream" : ""));
            Check(path, c.Body, text);
        }
        Assert.Superset(new HashSet<string> { "/v1/chat/completions", "/v1/chat/completions stream", "/v1/completions", "/v1/models", "/tokenize", "/ready" }, seen);
    }

    private static void Check(string path, string? body, string text)
    {
        switch (path)
        {
            case "/v1/chat/completions" when body!.Contains("\"stream\":true"):
                var events = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
                Assert.Equal("data: [DONE]", events[^1]);
                var usage = JsonDocument.Parse(events[^2][6..]).RootElement.GetProperty("usage");
                // Random weights may draw end-of-sequence before max_tokens (about 1 in 4096 per token).
                Assert.InRange(usage.GetProperty("completion_tokens").GetInt32(), 1, 16);
                break;
            case "/v1/chat/completions":
                var chat = JsonDocument.Parse(text).RootElement;
                Assert.InRange(chat.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), 1, 16);
                Assert.NotNull(chat.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
                break;
            case "/v1/completions":
                Assert.Contains(JsonDocument.Parse(text).RootElement.GetProperty("choices")[0].GetProperty("finish_reason").GetString(), new[] { "length", "stop" });
                break;
            case "/v1/models":
                var model = JsonDocument.Parse(text).RootElement.GetProperty("data")[0];
                Assert.Equal("bulwark-demo", model.GetProperty("id").GetString());
                Assert.Contains("random weights", model.GetProperty("metadata").GetProperty("notice").GetString());
                break;
            case "/tokenize":
                Assert.True(JsonDocument.Parse(text).RootElement.GetProperty("count").GetInt32() >= 2);
                break;
            case "/ready":
                Assert.Equal("ok\n", text);
                break;
        }
    }
}
