using Bulwark.Engine.Serving;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Backends;

/// <summary>
/// One request's call into a backend: what the spine hands over (the request with its max_tokens
/// resolved, and the prepared prompt), the spine's way to end a single choice early
/// (<see cref="Choices"/>: the output guard blocked it), and what the backend reports back besides
/// the deltas (<see cref="Usage"/>).
/// </summary>
public sealed class BackendCall(GenerationRequest request, PreparedPrompt prompt, ChoiceControl? choices = null)
{
    public GenerationRequest Request { get; } = request;

    public PreparedPrompt Prompt { get; } = prompt;

    /// <summary>Set by the spine when a choice must end now; the backend stops computing it and sends nothing more for it.</summary>
    public ChoiceControl Choices { get; } = choices ?? new();

    /// <summary>Token counts the backend itself reports by the end of the stream; null leaves the spine's own count.</summary>
    public GenerationUsage? Usage { get; set; }

    /// <summary>The generation span (null when not traced): the parent of the spans the backend makes, such as one per upstream attempt.</summary>
    public System.Diagnostics.Activity? Span { get; init; }

    /// <summary>Where the request ran when that is not this process (an upstream endpoint, as scheme://host:port), for the audit record.</summary>
    public string? Endpoint { get; set; }
}
