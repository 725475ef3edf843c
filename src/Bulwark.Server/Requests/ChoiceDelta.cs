using Bulwark.Engine.Serving;

namespace Bulwark.Server.Requests;

/// <summary>
/// What one choice adds at one step: from a backend to the spine, and after the output guard from
/// the spine to the route's writer. <see cref="Text"/> is the text to show (stop strings already
/// applied, possibly empty while text is held back); <see cref="GeneratedTokens"/> how many output
/// tokens it stands for (what usage counts); <see cref="Tokens"/> those tokens' details when the
/// request asked for logprobs (their text may be shown in an earlier or later delta).
/// <see cref="Finish"/> is set on a choice's last delta.
/// </summary>
public readonly record struct ChoiceDelta(int Index, string Text, FinishReason? Finish = null, IReadOnlyList<GeneratedToken>? Tokens = null, int GeneratedTokens = 0)
{
    /// <summary>The choice ended on a stop string (TGI says <c>stop_sequence</c>, not <c>eos_token</c>).</summary>
    public bool StopStringMatched { get; init; }

    /// <summary>On the last delta of a request with a JSON <c>response_format</c>: the check of the choice's whole text.</summary>
    public FormatCheck? Format { get; init; }

    /// <summary>Pieces of the choice's tool calls this delta adds (parsed from the model's text, or relayed from an upstream).</summary>
    public IReadOnlyList<ToolCallDelta>? ToolCalls { get; init; }

    /// <summary>On a choice's last delta: the choice made tool calls (a <c>stop</c> is then OpenAI's <c>tool_calls</c>).</summary>
    public bool CalledTools { get; init; }
}

/// <summary>Token counts a backend reports for a whole request.</summary>
public readonly record struct GenerationUsage(int PromptTokens, int CompletionTokens);
