using System.Text;
using System.Text.Json;
using Bulwark.Server.Api;
using Bulwark.Server.Backends;
using Bulwark.Server.Guardrails.Output;
using Bulwark.Server.Tests.Api;
using Bulwark.Server.Tests.Hosting;
using Microsoft.Extensions.Configuration;
using OpenAI.Chat;
using Xunit.Abstractions;

namespace Bulwark.Server.Tests.Guardrails;

/// <summary>The output guard on a real server, read by the official OpenAI SDK, and on synthetic delta streams.</summary>
public sealed class OutputGuardTests(ITestOutputHelper output)
{
    // A fake token in GitHub's published shape (ghp_ + 36 alphanumerics).
    private const string Token = "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5";
    private const string Reply = "Sure, use " + Token + " to log in. ";

    private static readonly OpenAI.Chat.ChatMessage[] Ask = [new UserChatMessage("give me the token")];

    private static Task<RunningServer> Start(string mode) => RunningServer.StartAsync(new ScriptedBackend { Reply = Reply },
        mode == "off" ? new() { [Bulwark.Server.Hosting.ServerSettings.RedactSecretsKey] = "false" } : new() { [OutputGuardModes.Key] = mode });

    [Fact]
    public async Task BlockModeEndsTheStreamWithContentFilterAndTheSdkParsesIt()
    {
        Assert.Equal(40, Token.Length);
        await using var server = await Start("block");
        var text = new StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in server.OpenAI().GetChatClient("test-model").CompleteChatStreamingAsync(Ask, new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 120 }))
        {
            foreach (var part in update.ContentUpdate) text.Append(part.Text);
            finish ??= update.FinishReason;
        }
        Assert.Equal(ChatFinishReason.ContentFilter, finish);
        Assert.Equal("Sure, use ", text.ToString());
    }

    [Fact]
    public async Task BlockModeStreamIsWellFormedSseEndingInDone()
    {
        await using var server = await Start("block");
        var body = JsonSerializer.Serialize(new { model = "test-model", stream = true, max_tokens = 120, temperature = 0, messages = new[] { new { role = "user", content = "x" } } });
        var (status, _, response) = await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", body);
        Assert.Equal(200, status);
        var raw = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain("ghp_", raw);
        var events = RawHttp.Events(raw);
        Assert.Equal("[DONE]", events[^1]);
        var last = JsonDocument.Parse(events[^2]).RootElement.GetProperty("choices")[0];
        Assert.Equal("content_filter", last.GetProperty("finish_reason").GetString());
        foreach (var e in events[..^1]) JsonDocument.Parse(e).Dispose(); // every event is one JSON object
    }

    [Fact]
    public async Task RedactModeReplacesTheSecretInStreamedAndWholeResponses()
    {
        await using var server = await Start("redact");
        var chat = server.OpenAI().GetChatClient("test-model");
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = Reply.Length };
        ChatCompletion whole = await chat.CompleteChatAsync(Ask, options);
        Assert.Equal("Sure, use [REDACTED:github-token] to log in. ", whole.Content[0].Text);
        var streamed = new StringBuilder();
        await foreach (var update in chat.CompleteChatStreamingAsync(Ask, options))
            foreach (var part in update.ContentUpdate) streamed.Append(part.Text);
        Assert.Equal(whole.Content[0].Text, streamed.ToString());
    }

    [Fact]
    public async Task SecretsFoundAreCountedInMetricsByRuleOncePerChoice()
    {
        await using var server = await Start("redact");
        await server.Metrics.GetStringAsync("metrics"); // the exposition starts listening at the first scrape
        Assert.DoesNotContain("bulwark_guard_output_secrets_total{", await server.Metrics.GetStringAsync("metrics"));
        // Whole with logprobs (the token texts pass a filter of their own that finds the secret again: not counted twice), then streamed.
        var body = JsonSerializer.Serialize(new { model = "test-model", max_tokens = Reply.Length, temperature = 0, logprobs = true, top_logprobs = 1, messages = new[] { new { role = "user", content = "x" } } });
        Assert.Equal(200, (await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", body)).Item1);
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = Reply.Length };
        await foreach (var _ in server.OpenAI().GetChatClient("test-model").CompleteChatStreamingAsync(Ask, options)) { }
        var metrics = await server.Metrics.GetStringAsync("metrics");
        Assert.Contains("bulwark_guard_output_secrets_total{action=\"redact\",rule=\"github-token\"} 2", metrics);
        Assert.DoesNotContain("action=\"block\"", metrics);
        Assert.DoesNotContain(Token, metrics);
    }

    [Fact]
    public async Task BlockedSecretsAreCountedWithTheBlockAction()
    {
        await using var server = await Start("block");
        await server.Metrics.GetStringAsync("metrics");
        await foreach (var _ in server.OpenAI().GetChatClient("test-model").CompleteChatStreamingAsync(Ask, new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 120 })) { }
        Assert.Contains("bulwark_guard_output_secrets_total{action=\"block\",rule=\"github-token\"} 1", await server.Metrics.GetStringAsync("metrics"));
    }

    [Fact]
    public async Task TextWithoutSecretsCountsNothing()
    {
        await using var server = await RunningServer.StartAsync(new ScriptedBackend { Reply = "Nothing secret here, just prose. " }, new() { [OutputGuardModes.Key] = "redact" });
        await server.Metrics.GetStringAsync("metrics");
        ChatCompletion whole = await server.OpenAI().GetChatClient("test-model").CompleteChatAsync(Ask, new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 20 });
        Assert.DoesNotContain("REDACTED", whole.Content[0].Text);
        Assert.DoesNotContain("bulwark_guard_output_secrets_total{", await server.Metrics.GetStringAsync("metrics"));
    }

    [Fact]
    public async Task LogprobTokenTextsAreRedactedAndTheirAlternativesDoNotSpellTheSecret()
    {
        await using var server = await Start("redact");
        var body = JsonSerializer.Serialize(new { model = "test-model", max_tokens = Reply.Length, temperature = 0, logprobs = true, top_logprobs = 2, messages = new[] { new { role = "user", content = "x" } } });
        var (status, json, _) = await RawHttp.PostJsonAsync(server.Http, "v1/chat/completions", body);
        Assert.Equal(200, status);
        var choice = json.GetProperty("choices")[0];
        var content = choice.GetProperty("message").GetProperty("content").GetString();
        Assert.Equal("Sure, use [REDACTED:github-token] to log in. ", content);
        var entries = choice.GetProperty("logprobs").GetProperty("content").EnumerateArray().ToList();
        Assert.Equal(content, string.Concat(entries.Select(e => e.GetProperty("token").GetString())));
        // The scripted backend's first alternative is the chosen token itself: kept alternatives must not spell any part of the secret.
        var firstAlternatives = string.Concat(entries.Select(e => e.GetProperty("top_logprobs").EnumerateArray().Select(a => a.GetProperty("token").GetString()).FirstOrDefault()));
        Assert.DoesNotContain(Token[4..10], firstAlternatives);
        Assert.StartsWith("Sure, us", firstAlternatives); // text before the secret keeps its alternatives
        Assert.EndsWith(" to log in. ", firstAlternatives); // and so does text after it, once nothing is held
        // The secret's tokens lose their alternatives, plus at most the character that settled the match.
        Assert.InRange(entries.Count(e => e.GetProperty("top_logprobs").GetArrayLength() == 0), Token.Length, Token.Length + 1);
    }

    [Fact]
    public async Task TgiStreamTokenEventsCarryRedactedText()
    {
        await using var server = await Start("redact");
        var body = JsonSerializer.Serialize(new { inputs = "x", parameters = new { max_new_tokens = Reply.Length } });
        var (status, _, response) = await RawHttp.PostJsonAsync(server.Http, "generate_stream", body);
        Assert.Equal(200, status);
        var raw = await response.Content.ReadAsStringAsync();
        var events = RawHttp.Events(raw).Select(e => JsonDocument.Parse(e).RootElement).ToList();
        var joined = string.Concat(events.Select(e => e.GetProperty("token").GetProperty("text").GetString()));
        Assert.Equal("Sure, use [REDACTED:github-token] to log in. ", joined);
        Assert.Equal(joined, events[^1].GetProperty("generated_text").GetString());
    }

    [Fact]
    public async Task OffModePassesTextThrough()
    {
        await using var server = await Start("off");
        ChatCompletion whole = await server.OpenAI().GetChatClient("test-model").CompleteChatAsync(Ask, new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = Reply.Length });
        Assert.Equal(Reply, whole.Content[0].Text);
    }

    [Fact]
    public void BlockFilterStopsAtTheSecretWhereverItIsSplit()
    {
        var text = "key: " + Token + " rest";
        for (var cut = 1; cut < text.Length; cut++)
        {
            var filter = new SecretRedactionGuard(OutputGuardMode.Block).Begin()!;
            var shown = filter.Push(text[..cut]);
            if (!filter.Blocked) shown += filter.Push(text[cut..]);
            Assert.True(filter.Blocked, $"cut at {cut}");
            Assert.Equal("key: ", shown);
        }
        var redact = new SecretRedactionGuard().Begin()!;
        Assert.Equal("key: [REDACTED:github-token] rest", redact.Push(text) + redact.Flush());
        Assert.False(redact.Blocked);
    }

    [Fact]
    public void BadModeNamesTheKeyAndValue()
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["Bulwark:Guardrails:Output:Mode"] = "mask" }).Build();
        Assert.Equal("Bulwark:Guardrails:Output:Mode must be redact or block; got 'mask'",
            Assert.Throws<FormatException>(() => OutputGuardModes.Read(configuration)).Message);
    }

    [Fact]
    public void RedactionCorpusFigures()
    {
        // Reported figures (docs/guardrails.md): every generated secret caught at every split; look-alikes touched.
        var corpus = new SyntheticSecrets(seed: 20261125).Embedded().ToArray();
        int splits = 0, missed = 0;
        foreach (var (_, text, secret, _) in corpus)
        {
            for (var cut = 1; cut < text.Length; cut++, splits++)
            {
                var redactor = new StreamingRedactor();
                var streamed = redactor.Push(text[..cut]) + redactor.Push(text[cut..]) + redactor.Flush();
                if (streamed.Contains(secret, StringComparison.Ordinal)) missed++;
            }
        }
        var lookAlikes = new SyntheticSecrets(seed: 7).LookAlikes(2000).ToArray();
        var touched = lookAlikes.Count(l => StreamingRedactor.Redact(l) != l);
        output.WriteLine($"secrets: {corpus.Length} texts, {splits} two-piece splits, {missed} missed; look-alikes touched: {touched}/{lookAlikes.Length}");
        Assert.Equal(0, missed);
        Assert.InRange(touched, 0, lookAlikes.Length / 100);
    }
}
