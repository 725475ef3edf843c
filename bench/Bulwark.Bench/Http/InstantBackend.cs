using System.Runtime.CompilerServices;
using Bulwark.Engine.Serving;
using Bulwark.Server.Backends;
using Bulwark.Server.Backends.Embedded;
using Bulwark.Server.Observability;
using Bulwark.Server.Requests;

namespace Bulwark.Bench.Http;

/// <summary>
/// For <c>bench serve --compare-security --instant-engine</c> only: the demo model's tokenizer and
/// chat template (so the request path is the real one up to the engine) with generation replaced
/// by answering the last prompt token back at once, max_tokens times per choice. It takes the
/// engine's own latency and scheduling jitter out of the comparison, leaving the HTTP front and the
/// security stages.
/// </summary>
internal sealed class InstantBackend(EmbeddedBackend model) : IGenerationBackend
{
    public ModelCard Model => model.Model;
    public BackendStatistics Statistics => model.Statistics;
    public PreparedPrompt Prepare(GenerationRequest request) => model.Prepare(request);

    public async IAsyncEnumerable<ChoiceDelta> GenerateAsync(BackendCall call, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var token = call.Prompt.TokenIds![^1];
        var text = model.Decode([token]);
        var max = call.Request.Sampling.MaxTokens;
        for (var choice = 0; choice < call.Request.Choices; choice++)
            for (var i = 1; i <= max; i++)
                yield return new ChoiceDelta(choice, text, i == max ? FinishReason.Length : null, GeneratedTokens: 1);
        await Task.CompletedTask;
    }
}
