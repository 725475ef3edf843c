using System.Diagnostics.Metrics;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Bulwark.Server.Audit;
using Bulwark.Server.Backends;
using Bulwark.Server.Guardrails;
using Bulwark.Server.Guardrails.GuardModels;
using Bulwark.Server.Requests;
using Bulwark.Server.Storage;
using Bulwark.Server.Tests.Hosting;
using Bulwark.Server.Tests.Security;
using Microsoft.Extensions.Configuration;

namespace Bulwark.Server.Tests.Guardrails.GuardModels;

/// <summary>
/// The guard model's output stage: whole responses checked before they are returned, streams held back
/// until a check covers them, blocks that end a choice with content_filter and show nothing unchecked,
/// timeouts falling back either way, and nothing changed when it is off.
/// </summary>
public sealed class OutputModerationTests
{
    private const string Reply = "Hello from the scripted backend. ";

    private static Dictionary<string, string?> Settings(int every = 4, string? fallback = null, string? timeoutMs = null, bool enabled = true)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Bulwark:Guardrails:GuardModel:Model"] = "guard",
            ["Bulwark:Guardrails:GuardModel:Format"] = "qwen3guard",
            ["Bulwark:Guardrails:GuardModel:Mode"] = "off",
            ["Bulwark:Guardrails:GuardModel:Output:Enabled"] = enabled ? "true" : "false",
            ["Bulwark:Guardrails:GuardModel:Output:CheckEveryTokens"] = every.ToString(),
        };
        if (fallback is not null) settings["Bulwark:Guardrails:GuardModel:Output:Fallback"] = fallback;
        // A generous timeout unless a test is about timeouts: a loaded machine must not turn a verdict into a fallback.
        settings["Bulwark:Guardrails:GuardModel:Output:TimeoutMs"] = timeoutMs ?? "60000";
        return settings;
    }

    private static async Task<RunningServer> ServerWith(IGenerationBackend guard, Dictionary<string, string?> settings, ScriptedBackend? model = null)
    {
        var server = await RunningServer.StartAsync(model ?? new ScriptedBackend(), settings);
        server.Get<ServedModels>().Add(guard, new ServedModelInfo("test", null, 0, DateTimeOffset.UtcNow));
        return server;
    }

    private static StringContent Chat(int maxTokens, bool stream, string user = "Tell me something.") => new(JsonSerializer.Serialize(new
    {
        model = "test-model", max_tokens = maxTokens, temperature = 0, seed = 7, stream, messages = new[] { new { role = "user", content = user } },
    }), Encoding.UTF8, "application/json");

    private static (string? Content, string? Finish) Whole(string body)
    {
        var choice = JsonDocument.Parse(body).RootElement.GetProperty("choices")[0];
        var content = choice.GetProperty("message").TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
        return (content, choice.GetProperty("finish_reason").GetString());
    }

    /// <summary>Reads a chat stream chunk by chunk as it arrives; <paramref name="onText"/> sees the content received so far after each chunk.</summary>
    private static async Task<(string Text, string? Finish, string Raw)> StreamAsync(HttpClient http, HttpContent body, Action<string>? onText = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = body };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var text = new StringBuilder();
        var raw = new StringBuilder();
        string? finish = null;
        while (await reader.ReadLineAsync() is { } line)
        {
            raw.Append(line).Append('\n');
            if (!line.StartsWith("data: {", StringComparison.Ordinal)) continue;
            var choices = JsonDocument.Parse(line["data: ".Length..]).RootElement.GetProperty("choices");
            if (choices.GetArrayLength() == 0) continue;
            var choice = choices[0];
            if (choice.GetProperty("delta").TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String) text.Append(c.GetString());
            if (choice.TryGetProperty("finish_reason", out var f) && f.ValueKind == JsonValueKind.String) finish = f.GetString();
            onText?.Invoke(text.ToString());
        }
        return (text.ToString(), finish, raw.ToString());
    }

    /// <summary>The longest answer a check passed (what a client may have received), "" before any.</summary>
    private static string LastPassed(JudgingGuard guard) =>
        guard.Judged.Where(j => !j.Unsafe).Select(j => j.Answer).DefaultIfEmpty("").MaxBy(a => a.Length)!;

    /// <summary>The checks' answers grow, each a prefix of the reply (the secret redactor may hold a character at a check).</summary>
    private static void AssertGrowingPrefixes(IReadOnlyList<string> asked)
    {
        for (var i = 0; i < asked.Count; i++)
        {
            Assert.StartsWith(asked[i], Reply + Reply, StringComparison.Ordinal);
            if (i > 0) Assert.True(asked[i].Length > asked[i - 1].Length, $"check {i} did not see more text than the one before");
        }
    }

    [Fact]
    public void TheStageIsOffByDefaultAndItsSettingsAreValidatedAndInherited()
    {
        static OutputModerationOptions Read(Dictionary<string, string?> values)
        {
            var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
            return OutputModerationOptions.Read(configuration, GuardModelOptions.Read(configuration));
        }
        var off = Read([]);
        Assert.False(off.Enabled);
        Assert.Equal(32, off.CheckEveryTokens);
        var on = Read(new()
        {
            ["Bulwark:Guardrails:GuardModel:Model"] = "guard", ["Bulwark:Guardrails:GuardModel:TimeoutMs"] = "700",
            ["Bulwark:Guardrails:GuardModel:Fallback"] = "block", ["Bulwark:Guardrails:GuardModel:Categories:S5"] = "allow",
            ["Bulwark:Guardrails:GuardModel:Output:Enabled"] = "true", ["Bulwark:Guardrails:GuardModel:Output:Categories:S1"] = "flag",
            ["Bulwark:Guardrails:GuardModel:Output:Tenants:kids:Unsafe"] = "block",
        });
        Assert.True(on.Enabled);
        Assert.Equal((TimeSpan.FromMilliseconds(700), GuardDecision.Block, "every"), (on.Checks.Timeout, on.Checks.Fallback, on.Checks.Mode.Kind));
        Assert.Equal(GuardDecision.Allow, on.Checks.Policy.Categories["S5"]); // from the input stage's policy
        Assert.Equal(GuardDecision.Flag, on.Checks.Policy.Categories["S1"]);
        Assert.Equal(GuardDecision.Flag, on.Checks.PolicyFor("kids").Categories["S1"]); // a tenant starts from the output's own
        var own = Read(new()
        {
            ["Bulwark:Guardrails:GuardModel:Model"] = "guard", ["Bulwark:Guardrails:GuardModel:Output:Enabled"] = "true",
            ["Bulwark:Guardrails:GuardModel:Output:TimeoutMs"] = "50", ["Bulwark:Guardrails:GuardModel:Output:Fallback"] = "allow",
        });
        Assert.Equal((TimeSpan.FromMilliseconds(50), GuardDecision.Allow), (own.Checks.Timeout, own.Checks.Fallback));

        // The window's limits: at, below and above.
        foreach (var (value, ok) in new[] { ("1", true), ("4096", true), ("0", false), ("4097", false), ("-3", false), ("many", false) })
        {
            Dictionary<string, string?> values = new()
            {
                ["Bulwark:Guardrails:GuardModel:Model"] = "guard", ["Bulwark:Guardrails:GuardModel:Output:Enabled"] = "true",
                ["Bulwark:Guardrails:GuardModel:Output:CheckEveryTokens"] = value,
            };
            if (ok) Assert.Equal(int.Parse(value), Read(values).CheckEveryTokens);
            else Assert.Contains("Output:CheckEveryTokens must be a whole number between 1 and 4096", Assert.Throws<FormatException>(() => Read(values)).Message);
        }
        Assert.Contains("GuardModel:Model is not set", Assert.Throws<FormatException>(() => Read(new() { ["Bulwark:Guardrails:GuardModel:Output:Enabled"] = "true" })).Message);
        Assert.Contains("must be true or false; got 'yes'", Assert.Throws<FormatException>(() => Read(new()
        {
            ["Bulwark:Guardrails:GuardModel:Model"] = "guard", ["Bulwark:Guardrails:GuardModel:Output:Enabled"] = "yes",
        })).Message);
        Assert.Contains("Output:Categories:Bogus is not a llama-guard-3 category", Assert.Throws<FormatException>(() => Read(new()
        {
            ["Bulwark:Guardrails:GuardModel:Model"] = "guard", ["Bulwark:Guardrails:GuardModel:Output:Categories:Bogus"] = "block",
        })).Message);
        Assert.Equal("off", GuardModelMode.Parse("off", "Mode").Kind);
    }

    [Fact]
    public async Task AWholeResponseIsCheckedOnceBeforeItIsReturnedAndABlockedOneShowsNoneOfItsText()
    {
        var guard = new JudgingGuard(answer => answer.Contains("scripted", StringComparison.Ordinal));
        await using var server = await ServerWith(guard, Settings(every: 2));
        using var passed = await server.Http.PostAsync("v1/chat/completions", Chat(10, stream: false));
        Assert.Equal(HttpStatusCode.OK, passed.StatusCode);
        Assert.Equal((Reply[..10], "length"), Whole(await passed.Content.ReadAsStringAsync()));
        Assert.Equal([Reply[..10]], guard.Asked); // one check, of the whole completion: the window is for streams

        using var blocked = await server.Http.PostAsync("v1/chat/completions", Chat(30, stream: false));
        Assert.Equal(HttpStatusCode.OK, blocked.StatusCode);
        var body = await blocked.Content.ReadAsStringAsync();
        var (content, finish) = Whole(body);
        Assert.Equal("content_filter", finish);
        Assert.True(string.IsNullOrEmpty(content));
        Assert.DoesNotContain("Hello", body);
        Assert.Equal(Reply[..30], guard.Asked[^1]);
        foreach (var word in new[] { "Safety", "Violent", "Unsafe", "ASSISTANT" }) Assert.DoesNotContain(word, body);
    }

    [Fact]
    public async Task AStreamShowsOnlyTextACheckThatPassedCovered()
    {
        var guard = new JudgingGuard(_ => false);
        // Each check waits a little for the test's reader, so the model runs ahead of the checks and the hold-back is exercised.
        guard.Gate = async ct => await Task.Yield();
        await using var server = await ServerWith(guard, Settings(every: 5));
        var chunks = 0;
        var (text, finish, _) = await StreamAsync(server.Http, Chat(30, stream: true), received =>
        {
            chunks++;
            // Everything received so far was covered by a check that passed before it was sent.
            Assert.StartsWith(received, LastPassed(guard), StringComparison.Ordinal);
        });
        Assert.Equal((Reply[..30], "length"), (text, finish));
        // A check after every 5 tokens, the last one at the end, each of the whole answer so far.
        Assert.Equal(6, guard.Asked.Count);
        AssertGrowingPrefixes(guard.Asked);
        Assert.Equal(Reply[..30], guard.Asked[^1]);
        Assert.True(chunks >= 6);
    }

    [Fact]
    public async Task ABlockMidStreamEndsTheChoiceWithContentFilterAndNothingUnchecked()
    {
        var model = new ScriptedBackend();
        var guard = new JudgingGuard(answer => answer.Contains("scripted", StringComparison.Ordinal));
        await using var server = await ServerWith(guard, Settings(every: 4), model);
        var (text, finish, raw) = await StreamAsync(server.Http, Chat(30, stream: true), received =>
            Assert.StartsWith(received, LastPassed(guard), StringComparison.Ordinal));
        // Checks after every 4 tokens: the first to see "scripted" (at 24 tokens) blocks; what the one before passed was shown, nothing after.
        Assert.Equal(6, guard.Asked.Count);
        AssertGrowingPrefixes(guard.Asked);
        Assert.Equal([false, false, false, false, false, true], guard.Judged.Select(j => j.Unsafe));
        Assert.Equal(guard.Asked[4], text);
        Assert.Equal("content_filter", finish);
        Assert.Contains("data: [DONE]", raw);
        foreach (var word in new[] { "Safety", "Violent", "Unsafe", "ASSISTANT", "scripted" }) Assert.DoesNotContain(word, raw);
        // The backend stopped computing the choice.
        Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(10), () => Task.FromResult(model.ActiveSequences == 0)));
        Assert.True(model.Requests.Count == 1);
    }

    [Theory]
    [InlineData("allow")]
    [InlineData("block")]
    public async Task ACheckThatTimesOutFallsBackAsConfigured(string fallback)
    {
        var guard = new JudgingGuard(_ => false) { Gate = ct => Task.Delay(Timeout.Infinite, ct) };
        await using var server = await ServerWith(guard, Settings(every: 4, fallback: fallback, timeoutMs: "100"));
        var (text, finish, raw) = await StreamAsync(server.Http, Chat(12, stream: true));
        using var whole = await server.Http.PostAsync("v1/chat/completions", Chat(12, stream: false));
        var (content, wholeFinish) = Whole(await whole.Content.ReadAsStringAsync());
        if (fallback == "allow")
        {
            Assert.Equal((Reply[..12], "length"), (text, finish));
            Assert.Equal((Reply[..12], "length"), (content, wholeFinish));
        }
        else
        {
            Assert.Equal(("", "content_filter"), (text, finish));
            Assert.True(string.IsNullOrEmpty(content));
            Assert.Equal("content_filter", wholeFinish);
            Assert.Equal(2, guard.Asked.Count); // the stream's first check blocked it: no later check; then the whole response's
            Assert.Equal(Reply[..12], guard.Asked[1]);
        }
        Assert.Contains("data: [DONE]", raw);
        await server.Get<AuditWriter>().FlushAsync();
        var audited = (await server.Get<SecurityStorage>().Audit.ReadRecentAsync(10, AuditRecord.RequestKind)).Where(r => r.Route == "POST /v1/chat/completions").ToList();
        Assert.Equal(2, audited.Count);
        foreach (var record in audited)
        {
            var output = JsonDocument.Parse(record.Guard!).RootElement.GetProperty("output");
            Assert.Equal(fallback, output.GetProperty("decision").GetString());
            Assert.Equal("timeout", output.GetProperty("model").GetProperty("outcome").GetString());
        }
    }

    /// <summary>The response with what differs between any two responses (ids, timestamps) blanked.</summary>
    private static string Stable(string body) => Regex.Replace(body, "\"(id|created|system_fingerprint)\":(\"[^\"]*\"|\\d+)", "\"$1\":_");

    [Fact]
    public async Task OffTheBytesAreUnchangedAndWithASafeVerdictTheyAreTheSame()
    {
        var idle = new JudgingGuard(_ => false);
        var safe = new JudgingGuard(_ => false);
        await using var plain = await RunningServer.StartAsync(new ScriptedBackend());
        await using var off = await ServerWith(idle, Settings(enabled: false));
        await using var on = await ServerWith(safe, Settings(every: 3));
        foreach (var stream in new[] { false, true })
        {
            var bodies = new List<string>();
            foreach (var server in new[] { plain, off, on })
            {
                using var response = await server.Http.PostAsync("v1/chat/completions", Chat(20, stream));
                bodies.Add(Stable(await response.Content.ReadAsStringAsync()));
            }
            Assert.Contains(stream ? "\"content\":\"H\"" : "Hello from the scri", bodies[0], StringComparison.Ordinal);
            Assert.Equal(bodies[0], bodies[1]);
            Assert.Equal(bodies[0], bodies[2]); // every delta released as it would have been sent, only later
        }
        Assert.Empty(idle.Asked);
        Assert.Equal(1 + 7, safe.Asked.Count); // whole: one check; stream: every 3 of 20 tokens and the end
    }

    [Fact]
    public async Task OutputVerdictsGoToTheAuditRecordBesideTheInputsAndToMetricsWithTheirStage()
    {
        var guard = new JudgingGuard(answer => answer.Contains("from", StringComparison.Ordinal));
        var settings = Settings(every: 4);
        settings["Bulwark:Guardrails:GuardModel:Mode"] = "every";
        settings["Bulwark:Guardrails:GuardModel:TimeoutMs"] = "60000";
        await using var server = await ServerWith(guard, settings);
        await server.Metrics.GetStringAsync("metrics");
        var (text, finish, _) = await StreamAsync(server.Http, Chat(16, stream: true));
        Assert.Equal((LastPassed(guard), "content_filter"), (text, finish));
        Assert.DoesNotContain("from", text);
        await server.Get<AuditWriter>().FlushAsync();
        var record = (await server.Get<SecurityStorage>().Audit.ReadRecentAsync(10, AuditRecord.RequestKind)).Single(r => r.Route == "POST /v1/chat/completions");
        var guardJson = JsonDocument.Parse(record.Guard!).RootElement;
        Assert.True(guardJson.TryGetProperty("score", out _)); // the input's verdict, as before
        Assert.Equal("allow", guardJson.GetProperty("model").GetProperty("decision").GetString());
        Assert.Equal("safe", guardJson.GetProperty("model").GetProperty("safety").GetString());
        var output = guardJson.GetProperty("output");
        Assert.Equal(("block", guard.Asked.Count), (output.GetProperty("decision").GetString(), output.GetProperty("checks").GetInt32()));
        Assert.Equal("unsafe", output.GetProperty("model").GetProperty("safety").GetString());
        Assert.Equal(["Violent"], output.GetProperty("model").GetProperty("categories").EnumerateArray().Select(c => c.GetString()));
        Assert.DoesNotContain("Hello", record.Guard!);
        var metrics = await server.Metrics.GetStringAsync("metrics");
        Assert.Matches("bulwark_guard_model_checks_total\\{[^}]*stage=\"output\"", metrics);
        Assert.Matches("bulwark_guard_model_checks_total\\{[^}]*stage=\"input\"", metrics);
        Assert.Matches("bulwark_guard_model_verdicts_total\\{[^}]*stage=\"output\"", metrics);
    }

    [Fact]
    public async Task ToolCallArgumentsAreOutputTheGuardJudges()
    {
        var guard = new JudgingGuard(answer => answer.Contains("rm -rf", StringComparison.Ordinal));
        var options = new OutputModerationOptions
        {
            Enabled = true, CheckEveryTokens = 100,
            Checks = new GuardModelOptions { Model = "guard", Format = Qwen3GuardFormat.Instance, Mode = GuardModelMode.Every },
        };
        var moderation = new OutputModeration(options, new GuardModelStage(options.Checks, new ServedModels(guard), new GuardModelMetrics(new Meter("t")), TimeProvider.System));
        var request = new GenerationRequest { Model = "m", Stream = true, Messages = [new ChatMessage("user", "Clean up my disk.")] };
        var choice = moderation.Begin(request, null);
        Assert.False(choice.Hold(new ChoiceDelta(0, "Sure."), 1));
        Assert.False(choice.Hold(new ChoiceDelta(0, "") { ToolCalls = [new ToolCallDelta(0, "call_1", "shell", "{\"cmd\":\"rm ")] }, 1));
        Assert.True(choice.Hold(new ChoiceDelta(0, "", Bulwark.Engine.Serving.FinishReason.Stop) { ToolCalls = [new ToolCallDelta(0, null, null, "-rf /\"}")] }, 1));
        Assert.False(await choice.CheckAsync(default));
        Assert.Equal("Sure.\nshell: {\"cmd\":\"rm -rf /\"}", guard.Asked.Single());
        Assert.Equal(0, choice.Held);
        Assert.Equal("Clean up my disk.", OutputModeration.UserText(request));
    }

    [Fact]
    public async Task ThroughTheEmbeddedEngineARandomGuardModelsVerdictsDecideTheStreamCheckByCheck()
    {
        // A synthetic Qwen3-shaped guard: its verdicts are whatever its random weights say under the format's grammar. With every
        // unsafe or controversial verdict mapped to block, the stream must end where the first such check falls, and show what the
        // checks before it passed; the oracle is the classifier asked directly about the same prefixes, outside the spine.
        using var synthetic = GuardModelClassifierTests.Synthetic("qwen3", 2);
        const int every = 8, max = 24;
        const string user = "Tell me something.";
        var expected = Reply[..max];
        var expectedFinish = "length";
        var classifier = new GuardModelClassifier(synthetic, Qwen3GuardFormat.Instance);
        var oracle = new List<string>();
        for (var end = every; ; end = Math.Min(end + every, max))
        {
            var verdict = await classifier.ClassifyAsync(user, Reply[..end]);
            oracle.Add(verdict.Safety.ToString());
            if (!verdict.IsSafe)
            {
                (expected, expectedFinish) = (Reply[..(end - every)], "content_filter");
                break;
            }
            if (end == max) break;
        }
        var settings = Settings(every: every);
        settings["Bulwark:Guardrails:RedactSecrets"] = "false"; // so each check sees exactly the tokens so far, as the oracle does
        settings["Bulwark:Guardrails:GuardModel:Output:Unsafe"] = "block";
        settings["Bulwark:Guardrails:GuardModel:Output:Controversial"] = "block";
        settings["Bulwark:Guardrails:GuardModel:Output:TimeoutMs"] = "120000";
        await using var server = await ServerWith(synthetic, settings);
        var (text, finish, raw) = await StreamAsync(server.Http, Chat(max, stream: true, user));
        Assert.Equal((expected, expectedFinish), (text, finish));
        foreach (var word in new[] { "Safety", "Categories", "ASSISTANT" }) Assert.DoesNotContain(word, raw);
        await server.Get<AuditWriter>().FlushAsync();
        var record = (await server.Get<SecurityStorage>().Audit.ReadRecentAsync(10, AuditRecord.RequestKind)).Single(r => r.Route == "POST /v1/chat/completions");
        var output = JsonDocument.Parse(record.Guard!).RootElement.GetProperty("output");
        Assert.Equal(oracle.Count, output.GetProperty("checks").GetInt32());
        Assert.Equal("verdict", output.GetProperty("model").GetProperty("outcome").GetString());
        Assert.Equal(oracle[^1].ToLowerInvariant(), output.GetProperty("model").GetProperty("safety").GetString());
    }
}
