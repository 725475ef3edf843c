using Bulwark.Engine.Serving;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Guardrails.Output;

/// <summary>
/// Stage 9 of the spine (output guard) as the spine sees it: every choice's text passes through
/// one filter of its own, after stop strings, before it reaches the client.
/// </summary>
public interface IOutputGuard
{
    /// <summary>A filter for one choice, or null when the guard is off.</summary>
    IOutputFilter? Begin();

    /// <summary>A filter for one choice of <paramref name="request"/> made by <paramref name="caller"/> (guards that depend on the tenant or the request override this).</summary>
    IOutputFilter? Begin(Caller? caller, GenerationRequest request) => Begin();
}

/// <summary>Transforms one choice's text as it streams; may hold text back until <see cref="Flush"/>.</summary>
public interface IOutputFilter
{
    string Push(string text);

    string Flush();

    /// <summary>
    /// True once the filter decided the choice must end here (a secret in block mode): the text
    /// returned by the last <see cref="Push"/> is the last the client sees, and the choice finishes
    /// with <see cref="FinishReason.ContentFilter"/>.
    /// </summary>
    bool Blocked => false;

    /// <summary>Characters pushed but not yet released (held back while they may still become a secret).</summary>
    int Held => 0;

    /// <summary>Rule ids of the secrets this filter found so far, one per secret, in order (counted in metrics when the choice ends).</summary>
    IReadOnlyList<string> Hits => [];
}

/// <summary>No output guard (tests of the bare API).</summary>
public sealed class NoOutputGuard : IOutputGuard
{
    public static readonly NoOutputGuard Instance = new();

    public IOutputFilter? Begin() => null;
}
