namespace Bulwark.Server.Guardrails.Output;

/// <summary>What the output guard does when it finds a secret in generated text.</summary>
public enum OutputGuardMode
{
    /// <summary>Replace the secret with <c>[REDACTED:rule]</c> and keep streaming.</summary>
    Redact,

    /// <summary>Stop the stream before the secret; the caller ends it with <c>finish_reason: "content_filter"</c>.</summary>
    Block,
}
