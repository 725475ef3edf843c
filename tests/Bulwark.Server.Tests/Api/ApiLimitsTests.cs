using System.Text.Json;
using Bulwark.Server.Security;
using Bulwark.Server.Tests.Hosting;

namespace Bulwark.Server.Tests.Api;

/// <summary>
/// Every limit of <c>Bulwark:Limits</c> below, at and above its configured value on the routes
/// <see cref="ValidationTests"/> does not cover (text completions, tokenize, TGI, admin), and the
/// ones it does not test at all (prompt characters, logprobs, model names, chat content parts).
/// </summary>
public sealed class ApiLimitsTests(ApiLimitsTests.Server server) : IClassFixture<ApiLimitsTests.Server>
{
    public const int BodyLimit = 4096;
    public const int PromptLimit = 40;

    public sealed class Server : IAsyncLifetime
    {
        public RunningServer Running { get; private set; } = null!;

        public string AdminKey { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            Running = await RunningServer.StartAsync(new ScriptedBackend(contextLength: 256) { EndAfter = 2 }, new()
            {
                ["Bulwark:Limits:MaxTokens"] = "32",
                ["Bulwark:Limits:MaxChoices"] = "4",
                ["Bulwark:Limits:MaxMessages"] = "3",
                ["Bulwark:Limits:MaxStopStrings"] = "2",
                ["Bulwark:Limits:MaxStopLength"] = "8",
                ["Bulwark:Limits:MaxIdentifierLength"] = "16",
                ["Bulwark:Limits:MaxRequestBodyBytes"] = BodyLimit.ToString(),
                ["Bulwark:Limits:MaxLogitBiasEntries"] = "5",
                ["Bulwark:Limits:MaxTopLogprobs"] = "3",
                ["Bulwark:Limits:MaxPromptCharacters"] = PromptLimit.ToString(),
            });
            AdminKey = (await Running.Get<KeyIssuer>().CreateAsync(new KeySpec { Name = "ops", IsAdmin = true }, "tests")).Key;
        }

        public async Task DisposeAsync() => await Running.DisposeAsync();
    }

    private static string Text(int length) => new('a', length);

    private static string Stops(int count, int length) =>
        "[" + string.Join(",", Enumerable.Range(0, count).Select(i => $"\"{new string((char)('A' + i), length)}\"")) + "]";

    private static string Bias(int count) => "{" + string.Join(",", Enumerable.Range(1, count).Select(i => $"\"{i}\":1")) + "}";

    private static string Chat(string messages) => $$"""{"model":"test-model","max_tokens":2,"messages":{{messages}}}""";

    private static string User(string content) => $$"""[{"role":"user","content":{{content}}}]""";

    private static string Parts(params int[] lengths) =>
        "[" + string.Join(",", lengths.Select(length => $$"""{"type":"text","text":"{{Text(length)}}"}""")) + "]";

    private static string Completion(string fields) => $$"""{"model":"test-model","prompt":"hi","max_tokens":2,{{fields}}}""";

    private static string Generate(string parameters) => $$$"""{"inputs":"hi","parameters":{{{{parameters}}}}}""";

    public static TheoryData<string, string, int, string?> Cases => new()
    {
        // MaxPromptCharacters (40): each place a prompt can come from, and the chat total over messages.
        { "v1/chat/completions", Chat(User($"\"{Text(PromptLimit - 1)}\"")), 200, null },
        { "v1/chat/completions", Chat(User($"\"{Text(PromptLimit)}\"")), 200, null },
        { "v1/chat/completions", Chat(User($"\"{Text(PromptLimit + 1)}\"")), 400, "messages[0].content" },
        { "v1/chat/completions", Chat($$"""[{"role":"system","content":"{{Text(20)}}"},{"role":"user","content":"{{Text(20)}}"}]"""), 200, null },
        { "v1/chat/completions", Chat($$"""[{"role":"system","content":"{{Text(20)}}"},{"role":"user","content":"{{Text(21)}}"}]"""), 400, "messages" },
        { "v1/chat/completions", Chat(User(Parts(20, 20))), 200, null },
        { "v1/chat/completions", Chat(User(Parts(20, 21))), 400, "messages[0].content" },
        // MaxMessages (3) also bounds the parts of one message's content.
        { "v1/chat/completions", Chat(User(Parts(1, 1))), 200, null },
        { "v1/chat/completions", Chat(User(Parts(1, 1, 1))), 200, null },
        { "v1/chat/completions", Chat(User(Parts(1, 1, 1, 1))), 400, "messages[0].content" },
        { "v1/chat/completions", Chat($$"""[{"role":"user","content":"a"},{"role":"user","content":"b"}]"""), 200, null },
        { "v1/completions", $$"""{"model":"test-model","prompt":"{{Text(PromptLimit - 1)}}"}""", 200, null },
        { "v1/completions", $$"""{"model":"test-model","prompt":"{{Text(PromptLimit)}}"}""", 200, null },
        { "v1/completions", $$"""{"model":"test-model","prompt":"{{Text(PromptLimit + 1)}}"}""", 400, "prompt" },
        { "v1/completions", $$"""{"model":"test-model","prompt":["{{Text(PromptLimit)}}"]}""", 200, null },
        { "v1/completions", $$"""{"model":"test-model","prompt":["{{Text(PromptLimit + 1)}}"]}""", 400, "prompt[0]" },
        { "generate", $$"""{"inputs":"{{Text(PromptLimit - 1)}}"}""", 200, null },
        { "generate", $$"""{"inputs":"{{Text(PromptLimit)}}"}""", 200, null },
        { "generate", $$"""{"inputs":"{{Text(PromptLimit + 1)}}"}""", 400, "inputs" },
        { "tokenize", $$"""{"prompt":"{{Text(PromptLimit - 1)}}"}""", 200, null },
        { "tokenize", $$"""{"prompt":"{{Text(PromptLimit)}}"}""", 200, null },
        { "tokenize", $$"""{"prompt":"{{Text(PromptLimit + 1)}}"}""", 400, "prompt" },
        { "tokenize", $$"""{"messages":{{User($"\"{Text(PromptLimit)}\"")}}}""", 200, null },
        { "tokenize", $$"""{"messages":{{User($"\"{Text(PromptLimit + 1)}\"")}}}""", 400, "messages[0].content" },
        { "tokenize", """{"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},{"role":"user","content":"c"}]}""", 200, null },
        { "tokenize", """{"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},{"role":"user","content":"c"},{"role":"user","content":"d"}]}""", 400, "messages" },
        // MaxTokens (32): max_tokens on completions, max_new_tokens on TGI.
        { "v1/completions", Completion("\"max_tokens\":31").Replace("\"max_tokens\":2,", ""), 200, null },
        { "v1/completions", Completion("\"max_tokens\":32").Replace("\"max_tokens\":2,", ""), 200, null },
        { "v1/completions", Completion("\"max_tokens\":33").Replace("\"max_tokens\":2,", ""), 400, "max_tokens" },
        { "v1/completions", Completion("\"max_tokens\":0").Replace("\"max_tokens\":2,", ""), 400, "max_tokens" },
        { "generate", Generate("\"max_new_tokens\":31"), 200, null },
        { "generate", Generate("\"max_new_tokens\":32"), 200, null },
        { "generate", Generate("\"max_new_tokens\":33"), 400, "parameters.max_new_tokens" },
        { "generate", Generate("\"max_new_tokens\":0"), 400, "parameters.max_new_tokens" },
        // MaxChoices (4): n and best_of on completions.
        { "v1/completions", Completion("\"n\":3"), 200, null },
        { "v1/completions", Completion("\"n\":4"), 200, null },
        { "v1/completions", Completion("\"n\":5"), 400, "n" },
        { "v1/completions", Completion("\"n\":4,\"best_of\":4"), 200, null },
        { "v1/completions", Completion("\"n\":4,\"best_of\":5"), 400, "best_of" },
        // MaxStopStrings (2) and MaxStopLength (8) on completions and TGI.
        { "v1/completions", Completion($"\"stop\":{Stops(1, 7)}"), 200, null },
        { "v1/completions", Completion($"\"stop\":{Stops(2, 8)}"), 200, null },
        { "v1/completions", Completion($"\"stop\":{Stops(3, 1)}"), 400, "stop" },
        { "v1/completions", Completion($"\"stop\":{Stops(1, 9)}"), 400, "stop[0]" },
        { "generate", Generate($"\"stop\":{Stops(1, 7)}"), 200, null },
        { "generate", Generate($"\"stop\":{Stops(2, 8)}"), 200, null },
        { "generate", Generate($"\"stop\":{Stops(3, 1)}"), 400, "parameters.stop" },
        { "generate", Generate($"\"stop\":{Stops(2, 9)}"), 400, "parameters.stop[0]" },
        // MaxLogitBiasEntries (5) on completions.
        { "v1/completions", Completion($"\"logit_bias\":{Bias(4)}"), 200, null },
        { "v1/completions", Completion($"\"logit_bias\":{Bias(5)}"), 200, null },
        { "v1/completions", Completion($"\"logit_bias\":{Bias(6)}"), 400, "logit_bias" },
        // MaxTopLogprobs (3): chat top_logprobs, and the legacy logprobs (at most 5, and at most the limit).
        { "v1/chat/completions", Chat(User("\"hi\"")).Replace("\"max_tokens\":2", "\"max_tokens\":2,\"logprobs\":true,\"top_logprobs\":2"), 200, null },
        { "v1/chat/completions", Chat(User("\"hi\"")).Replace("\"max_tokens\":2", "\"max_tokens\":2,\"logprobs\":true,\"top_logprobs\":3"), 200, null },
        { "v1/chat/completions", Chat(User("\"hi\"")).Replace("\"max_tokens\":2", "\"max_tokens\":2,\"logprobs\":true,\"top_logprobs\":4"), 400, "top_logprobs" },
        { "v1/completions", Completion("\"logprobs\":2"), 200, null },
        { "v1/completions", Completion("\"logprobs\":3"), 200, null },
        { "v1/completions", Completion("\"logprobs\":4"), 400, "logprobs" },
        { "generate", Generate("\"top_n_tokens\":2"), 200, null },
        { "generate", Generate("\"top_n_tokens\":3"), 200, null },
        { "generate", Generate("\"top_n_tokens\":4"), 400, "parameters.top_n_tokens" },
        { "generate", Generate("\"top_n_tokens\":-1"), 400, "parameters.top_n_tokens" },
        // MaxIdentifierLength (16): user on completions, and model names (an unknown name of legal length is 404).
        { "v1/completions", Completion($"\"user\":\"{Text(15)}\""), 200, null },
        { "v1/completions", Completion($"\"user\":\"{Text(16)}\""), 200, null },
        { "v1/completions", Completion($"\"user\":\"{Text(17)}\""), 400, "user" },
        { "v1/completions", $$"""{"model":"{{Text(16)}}","prompt":"hi"}""", 404, "model" },
        { "v1/completions", $$"""{"model":"{{Text(17)}}","prompt":"hi"}""", 400, "model" },
        { "tokenize", $$"""{"model":"{{Text(16)}}","prompt":"hi"}""", 404, "model" },
        { "tokenize", $$"""{"model":"{{Text(17)}}","prompt":"hi"}""", 400, "model" },
        // Detokenize takes at most the context length (256) of token ids.
        { "detokenize", $$"""{"tokens":[{{string.Join(",", Enumerable.Repeat(97, 256))}}]}""", 200, null },
        { "detokenize", $$"""{"tokens":[{{string.Join(",", Enumerable.Repeat(97, 257))}}]}""", 400, "tokens" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task EachLimitHoldsAtItsValue(string path, string json, int status, string? param)
    {
        var (actual, body, _) = await RawHttp.PostJsonAsync(server.Running.Http, path, json);

        Assert.True(status == actual, $"{path} {json}: expected {status}, got {actual}: {body}");
        if (status == 200) return;
        var error = RawHttp.Error(body);
        Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.Contains(param!.Split('[', '.')[0], error.GetProperty("message").GetString());
    }

    /// <summary>A body of exactly <paramref name="size"/> bytes: the route's own, padded with an ignored field.</summary>
    private static string Padded(string json, int size)
    {
        var open = json[..^1] + ",\"pad\":\"";
        var padded = open + new string('x', size - open.Length - 2) + "\"}";
        Assert.Equal(size, padded.Length);
        return padded;
    }

    public static TheoryData<string, string, int> BodySizes()
    {
        var data = new TheoryData<string, string, int>();
        foreach (var (path, json) in new[]
        {
            ("v1/completions", """{"model":"test-model","prompt":"hi","max_tokens":2}"""),
            ("generate", """{"inputs":"hi","parameters":{"max_new_tokens":2}}"""),
            ("generate_stream", """{"inputs":"hi","parameters":{"max_new_tokens":2}}"""),
            ("tokenize", """{"prompt":"hi"}"""),
            ("detokenize", """{"tokens":[104,105]}"""),
            ("admin/ip-blocks/remove", """{"cidr":"10.1.2.0/24"}"""),
        })
        {
            data.Add(path, json, BodyLimit - 1);
            data.Add(path, json, BodyLimit);
            data.Add(path, json, BodyLimit + 1);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(BodySizes))]
    public async Task BodyLimitHoldsOnEveryRoute(string path, string json, int size)
    {
        // A fresh client per case: Kestrel closes the connection after a 413. It waits for "100 Continue", so a refusal
        // that comes before the body is read is not lost to a write on the closed connection.
        using var http = server.Running.Client(path.StartsWith("admin/", StringComparison.Ordinal) ? server.AdminKey : server.Running.ApiKey);
        http.DefaultRequestHeaders.ExpectContinue = true;

        var (status, body, _) = await RawHttp.PostJsonAsync(http, path, Padded(json, size));

        if (size <= BodyLimit)
        {
            // ip-blocks/remove of a range never blocked answers 404, which is past the body's reading too.
            Assert.True(status is >= 200 and < 300 or 404, $"{path} at {size} bytes: {status} {body}");
            return;
        }
        Assert.Equal(413, status);
        Assert.Equal("request_too_large", RawHttp.Error(body).GetProperty("code").GetString());
    }

    [Fact]
    public async Task ChunkedBodyAboveTheLimitIsRefusedOnTgi()
    {
        using var http = server.Running.Client(server.Running.ApiKey);
        using var response = await RawHttp.PostChunkedAsync(http, "generate", Padded("""{"inputs":"hi"}""", BodyLimit + 1));

        Assert.Equal(413, (int)response.StatusCode);
        Assert.Equal("request_too_large", RawHttp.Error(JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement).GetProperty("code").GetString());
    }
}
