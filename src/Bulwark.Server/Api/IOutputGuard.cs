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
}

/// <summary>Transforms one choice's text as it streams; may hold text back until <see cref="Flush"/>.</summary>
public interface IOutputFilter
{
    string Push(string text);

    string Flush();
}

/// <summary>No output guard (tests of the bare API).</summary>
public sealed class NoOutputGuard : IOutputGuard
{
    public static readonly NoOutputGuard Instance = new();

    public IOutputFilter? Begin() => null;
}

/// <summary>Replaces secrets (API keys, private keys, tokens) in generated text with <c>[REDACTED:rule]</c>, whatever the token boundaries.</summary>
public sealed class SecretRedactionGuard(SecretRuleSet? rules = null) : IOutputGuard
{
    public IOutputFilter? Begin() => new Filter(new StreamingRedactor(OutputGuardMode.Redact, rules));

    private sealed class Filter(StreamingRedactor redactor) : IOutputFilter
    {
        public string Push(string text) => text.Length == 0 ? "" : redactor.Push(text);

        public string Flush() => redactor.Flush();
    }
}
