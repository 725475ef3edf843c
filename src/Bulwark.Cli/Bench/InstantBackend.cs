using System.Runtime.CompilerServices;
using Bulwark.Server.Backends;
using Bulwark.Server.Observability;

namespace Bulwark.Cli.Bench;

/// <summary>
/// For <c>bench serve --compare-security --instant-engine</c> only: the demo model's tokenizer and
/// chat template (so the request path is the real one up to the engine) with generation replaced
/// by answering the first prompt token back at once. It takes the engine's own latency and
/// scheduling jitter out of the comparison, leaving the HTTP front and the security stages.
/// </summary>
internal sealed class InstantBackend(IGenerationBackend tokenizer) : IGenerationBackend
{
    public ModelCard Model => tokenizer.Model;
    public BackendStatistics Statistics => tokenizer.Statistics;
    public int[] Encode(string text, bool addSpecialTokens) => tokenizer.Encode(text, addSpecialTokens);
    public string Decode(ReadOnlySpan<int> tokenIds) => tokenizer.Decode(tokenIds);
    public int[] EncodeChat(IReadOnlyList<ChatMessage> messages) => tokenizer.EncodeChat(messages);

    public async IAsyncEnumerable<GeneratedToken> GenerateAsync(GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var token = request.PromptTokenIds[^1];
        for (var i = 1; i <= request.MaxTokens; i++)
            yield return new GeneratedToken(token, tokenizer.Decode([token]), i == request.MaxTokens ? FinishReason.Length : FinishReason.None);
        await Task.CompletedTask;
    }
}
