using System.Text.Json;
using Bulwark.Engine.Tools;

namespace Bulwark.Server.Requests;

/// <summary>OpenAI's <c>tool_choice</c>.</summary>
public enum ToolChoice
{
    /// <summary>The model decides: free text, calls parsed when it writes them.</summary>
    Auto,
    /// <summary>No calls: the tools are not rendered and the output is not parsed for calls.</summary>
    None,
    /// <summary>At least one call, enforced by the grammar on the embedded engine.</summary>
    Required,
    /// <summary>A call of <see cref="ToolRequest.Function"/>, enforced by the grammar on the embedded engine.</summary>
    Function,
}

/// <summary>
/// The tools of a chat request as the contract stage validated them: the functions (each one's parameters a
/// schema constrained decoding can enforce), <c>tool_choice</c>, <c>parallel_tool_calls</c>, and the
/// <c>tools</c> array as the client sent it (what the chat template renders and an upstream receives).
/// </summary>
public sealed record ToolRequest(IReadOnlyList<ToolFunction> Functions, JsonElement Json, ToolChoice Choice, string? Function, bool Parallel)
{
    /// <summary>The <see cref="OutputConstraint.Field"/> of calls the grammar enforces (<c>tool_choice</c> required or a named function).</summary>
    public const string EnforcedBy = "tool_choice";

    /// <summary>The format the output is parsed in for calls (the model's); <see cref="ToolCallFormat.None"/>: not parsed (an upstream relays calls itself, or <c>tool_choice</c> is none).</summary>
    public ToolCallFormat Parse { get; init; }

    /// <summary>The declared function names.</summary>
    public IReadOnlySet<string> Names { get; } = Functions.Select(f => f.Name).ToHashSet(StringComparer.Ordinal);

    /// <summary>The tools the chat template renders: none when <c>tool_choice</c> is none.</summary>
    public JsonElement? Rendered => Choice == ToolChoice.None ? null : Json;
}

/// <summary>One call in an assistant message of the conversation (or of the output): its id, the function, the arguments as JSON text.</summary>
public sealed record ToolCallMessage(string Id, string Name, string Arguments);

/// <summary>
/// A piece of one tool call of a choice, as OpenAI streams it: the first piece of call <see cref="Index"/> carries
/// its <see cref="Id"/> and <see cref="Name"/>, later pieces only argument text (non-streamed responses join them).
/// </summary>
public readonly record struct ToolCallDelta(int Index, string? Id, string? Name, string Arguments);
