using Bulwark.Server.Observability;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Backends;

/// <summary>
/// Stage 8 of the spine, the seam every backend implements at the level of a request: the embedded
/// engine, and an upstream pool (vLLM, TGI, SGLang, llama.cpp's server, another Bulwark). A validated
/// <see cref="GenerationRequest"/> (messages or prompt, sampling, stop strings, n, logprobs, response
/// format) goes in; a stream of <see cref="ChoiceDelta"/>s comes out, with the usage the backend counts.
/// Token-level services are an optional capability (<see cref="ITokenizingBackend"/>).
/// </summary>
public interface IGenerationBackend
{
    /// <summary>What is served: its id, context length and what an operator should know about it.</summary>
    ModelCard Model { get; }

    /// <summary>
    /// Stage 6, the prompt in this backend's terms: the chat template rendered and tokenized where the
    /// backend can, so the token quota and the context check use an exact count; otherwise an estimate.
    /// Throws <see cref="ApiException"/> for a prompt the model cannot take (no chat template, a control
    /// token spelt in a message, an empty prompt).
    /// </summary>
    PreparedPrompt Prepare(GenerationRequest request);

    /// <summary>
    /// Stage 8: generates every choice of <see cref="BackendCall.Request"/>, whose max_tokens the spine
    /// has set. Stop strings are applied here (the text of a delta never holds one); the last delta of
    /// each choice carries its finish reason. Cancelling <paramref name="cancellationToken"/> or disposing
    /// the enumerator early ends every choice and frees what it held; <see cref="BackendCall.Choices"/>
    /// ends single choices.
    /// </summary>
    IAsyncEnumerable<ChoiceDelta> GenerateAsync(BackendCall call, CancellationToken cancellationToken);

    /// <summary>Engine counters for the metrics endpoint, read at scrape time (zeros where a backend has none).</summary>
    BackendStatistics Statistics { get; }
}

/// <summary>Token-level services a backend may offer besides generation (<c>/tokenize</c>, <c>/detokenize</c>).</summary>
public interface ITokenizingBackend
{
    /// <summary>Token ids of <paramref name="text"/>; <paramref name="addSpecialTokens"/> adds BOS where the model wants it.</summary>
    int[] Encode(string text, bool addSpecialTokens);

    /// <summary>The text of <paramref name="tokenIds"/>; ids outside the vocabulary throw <see cref="ArgumentOutOfRangeException"/>.</summary>
    string Decode(ReadOnlySpan<int> tokenIds);

    /// <summary>
    /// Renders a conversation with the model's chat template, ending with the assistant's turn opened, as token ids;
    /// <paramref name="tools"/> (OpenAI's <c>tools</c> array, null: none) as the template's <c>tools</c>, as the chat route renders them.
    /// </summary>
    int[] EncodeChat(IReadOnlyList<ChatMessage> messages, System.Text.Json.JsonElement? tools = null);
}
