using Microsoft.Extensions.Configuration;

namespace Bulwark.Server.Guardrails.Output;

/// <summary>What the output guard does when it finds a secret in generated text.</summary>
public enum OutputGuardMode
{
    /// <summary>Replace the secret with <c>[REDACTED:rule]</c> and keep streaming.</summary>
    Redact,

    /// <summary>Stop the stream before the secret; the caller ends it with <c>finish_reason: "content_filter"</c>.</summary>
    Block,
}

public static class OutputGuardModes
{
    public const string Key = "Bulwark:Guardrails:Output:Mode";

    /// <summary>Reads <c>Bulwark:Guardrails:Output:Mode</c> (<c>redact</c> by default, or <c>block</c>); the error names the key and value.</summary>
    public static OutputGuardMode Read(IConfiguration configuration) => configuration[Key]?.Trim().ToLowerInvariant() switch
    {
        null or "redact" => OutputGuardMode.Redact,
        "block" => OutputGuardMode.Block,
        var other => throw new FormatException($"{Key} must be redact or block; got '{other}'"),
    };
}
