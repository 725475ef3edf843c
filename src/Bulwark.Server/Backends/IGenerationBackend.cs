using Bulwark.Server.Observability;
namespace Bulwark.Server.Backends;

/// <summary>
/// The one thing the HTTP API calls to turn tokens into more tokens. The embedded engine and,
/// later, an upstream pool implement it; the API layer never sees which.
/// </summary>
public interface IGenerationBackend
{
    /// <summary>What is served: its id, context length and what an operator should know about it.</summary>
    ModelCard Model { get; }

    /// <summary>Token ids of <paramref name="text"/>; <paramref name="addSpecialTokens"/> adds BOS where the model wants it.</summary>
    int[] Encode(string text, bool addSpecialTokens);

    /// <summary>The text of <paramref name="tokenIds"/>; ids outside the vocabulary throw <see cref="ArgumentOutOfRangeException"/>.</summary>
    string Decode(ReadOnlySpan<int> tokenIds);

    /// <summary>Renders a conversation with the model's chat template, ending with the assistant's turn opened, as token ids.</summary>
    int[] EncodeChat(IReadOnlyList<ChatMessage> messages);

    /// <summary>
    /// Generates one sequence. Yields one event per generated token; the last event carries the
    /// finish reason. Cancelling <paramref name="cancellationToken"/> or disposing the enumerator
    /// early frees the sequence and its KV blocks.
    /// </summary>
    IAsyncEnumerable<GeneratedToken> GenerateAsync(GenerationRequest request, CancellationToken cancellationToken);

    /// <summary>Engine counters for the metrics endpoint, read at scrape time.</summary>
    BackendStatistics Statistics { get; }
}
