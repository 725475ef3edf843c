using System.ClientModel;
using Bulwark.Server.Tests.Hosting;
using OpenAI.Chat;

namespace Bulwark.Server.Tests.Api;

/// <summary>The official OpenAI .NET SDK, as a user would point it at Bulwark, against a real Kestrel.</summary>
public sealed class OpenAiClientTests : IAsyncLifetime
{
    private readonly ScriptedBackend _backend = new();
    private RunningServer _server = null!;

    // The output guard may hold a token back while it could begin a secret, which would merge stream
    // updates; these tests count one update per token, so they run without it (SecuredServerTests covers it).
    public async Task InitializeAsync() =>
        _server = await RunningServer.StartAsync(_backend, new() { [Bulwark.Server.Hosting.ServerSettings.RedactSecretsKey] = "false" });

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private ChatClient Chat => _server.OpenAI().GetChatClient("test-model");

    private static readonly ChatMessage[] Hello = [new SystemChatMessage("Be brief."), new UserChatMessage("hi")];

    private static int PromptLength => "<system>Be brief.\n<user>hi\n<assistant>".Length;

    [Fact]
    public async Task ChatCompletionReturnsTheGeneratedTextAndUsage()
    {
        ChatCompletion reply = await Chat.CompleteChatAsync(Hello, new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 10 });

        Assert.Equal("Hello from", reply.Content[0].Text);
        Assert.Equal(ChatFinishReason.Length, reply.FinishReason);
        Assert.Equal(ChatMessageRole.Assistant, reply.Role);
        Assert.Equal("test-model", reply.Model);
        Assert.Equal(PromptLength, reply.Usage.InputTokenCount);
        Assert.Equal(10, reply.Usage.OutputTokenCount);
        Assert.Equal(PromptLength + 10, reply.Usage.TotalTokenCount);
    }

    [Fact]
    public async Task StreamingDeliversTheSameTextThenUsage()
    {
        var text = new System.Text.StringBuilder();
        ChatTokenUsage? usage = null;
        ChatFinishReason? finish = null;
        var updates = 0;
        await foreach (var update in Chat.CompleteChatStreamingAsync(Hello, new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 10 }))
        {
            updates++;
            foreach (var part in update.ContentUpdate) text.Append(part.Text);
            finish ??= update.FinishReason;
            usage ??= update.Usage;
        }

        Assert.Equal("Hello from", text.ToString());
        Assert.Equal(ChatFinishReason.Length, finish);
        Assert.True(updates >= 10, $"expected one update per token, got {updates}");
        Assert.NotNull(usage);
        Assert.Equal(10, usage.OutputTokenCount);
        Assert.Equal(PromptLength, usage.InputTokenCount);
    }

    [Fact]
    public async Task StopSequenceEndsTheReplyBeforeTheStopString()
    {
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 30 };
        options.StopSequences.Add("from");
        ChatCompletion reply = await Chat.CompleteChatAsync(Hello, options);

        Assert.Equal("Hello ", reply.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, reply.FinishReason);
    }

    [Fact]
    public async Task StreamedStopStringIsNeverShownEvenInPart()
    {
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 30 };
        options.StopSequences.Add("scripted");
        var text = new System.Text.StringBuilder();
        await foreach (var update in Chat.CompleteChatStreamingAsync(Hello, options))
            foreach (var part in update.ContentUpdate) text.Append(part.Text);

        Assert.Equal("Hello from the ", text.ToString());
    }

    [Fact]
    public async Task LogprobsListEveryTokenWithTheAskedAlternatives()
    {
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 5, IncludeLogProbabilities = true, TopLogProbabilityCount = 3 };
        ChatCompletion reply = await Chat.CompleteChatAsync(Hello, options);

        Assert.Equal(5, reply.ContentTokenLogProbabilities.Count);
        Assert.Equal("Hello", string.Concat(reply.ContentTokenLogProbabilities.Select(t => t.Token)));
        Assert.All(reply.ContentTokenLogProbabilities, t =>
        {
            Assert.Equal(-0.5f, t.LogProbability);
            Assert.Equal(3, t.TopLogProbabilities.Count);
            Assert.Equal(System.Text.Encoding.UTF8.GetBytes(t.Token), t.Utf8Bytes!.Value.ToArray());
        });
    }

#pragma warning disable OPENAI001 // Seed is marked experimental in the SDK.
    [Fact]
    public async Task SameSeedGivesTheSameSampledReply()
    {
        async Task<string> Sample(long seed)
        {
            var options = new ChatCompletionOptions { Temperature = 1, MaxOutputTokenCount = 24, Seed = seed };
            ChatCompletion reply = await Chat.CompleteChatAsync(Hello, options);
            return reply.Content[0].Text;
        }

        var first = await Sample(42);
        Assert.Equal(first, await Sample(42));
        Assert.NotEqual(first, await Sample(43));
    }
#pragma warning restore OPENAI001

    [Fact]
    public async Task OutOfRangeFieldSurfacesAsClientErrorWithOurMessage()
    {
        var e = await Assert.ThrowsAsync<ClientResultException>(() => Chat.CompleteChatAsync(Hello, new ChatCompletionOptions { Temperature = 3 }));

        Assert.Equal(400, e.Status);
        Assert.Contains("temperature must be between 0 and 2; got 3", e.Message);
    }

    [Fact]
    public async Task UnknownModelIsNotFound()
    {
        var other = _server.OpenAI().GetChatClient("gpt-4o");
        var e = await Assert.ThrowsAsync<ClientResultException>(() => other.CompleteChatAsync(Hello));

        Assert.Equal(404, e.Status);
        Assert.Contains("'gpt-4o' does not exist", e.Message);
    }

    [Fact]
    public async Task ModelListNamesTheServedModel()
    {
        var models = await _server.OpenAI().GetOpenAIModelClient().GetModelsAsync();

        var model = Assert.Single(models.Value);
        Assert.Equal("test-model", model.Id);
        Assert.Equal("bulwark", model.OwnedBy);
    }
}
