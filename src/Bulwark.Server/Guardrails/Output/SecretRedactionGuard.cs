namespace Bulwark.Server.Guardrails.Output;

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
