using Bulwark.Server.Backends;
using Bulwark.Server.Guardrails.Output;

namespace Bulwark.Server.Api;

/// <summary>
/// Stage 9 of the spine (output guard) as <see cref="CompletionRun"/> sees it: every choice's text
/// passes through one filter of its own, after stop strings, before it reaches the client.
/// </summary>
public interface IOutputGuard
{
    /// <summary>A filter for one choice, or null when the guard is off.</summary>
    IOutputFilter? Begin();

    /// <summary>A filter for one choice of <paramref name="job"/> made for <paramref name="caller"/> (guards that depend on the tenant or the request override this).</summary>
    IOutputFilter? Begin(RequestCaller caller, CompletionJob job) => Begin();
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

/// <summary>
/// Replaces secrets (API keys, private keys, tokens) in generated text with <c>[REDACTED:rule]</c>,
/// whatever the token boundaries; in <see cref="OutputGuardMode.Block"/> mode the choice ends
/// before the secret instead (<c>finish_reason: "content_filter"</c>).
/// </summary>
public sealed class SecretRedactionGuard(OutputGuardMode mode = OutputGuardMode.Redact, SecretRuleSet? rules = null) : IOutputGuard
{
    public IOutputFilter? Begin() => new Filter(new StreamingRedactor(mode, rules));

    private sealed class Filter(StreamingRedactor redactor) : IOutputFilter
    {
        public string Push(string text) => text.Length == 0 ? "" : redactor.Push(text);

        public string Flush() => redactor.Flush();

        public bool Blocked => redactor.IsBlocked;

        public int Held => redactor.Pending;

        public IReadOnlyList<string> Hits => redactor.Hits;
    }
}
