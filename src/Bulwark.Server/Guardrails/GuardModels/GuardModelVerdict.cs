namespace Bulwark.Server.Guardrails.GuardModels;

/// <summary>A guard model's safety class. Llama Guard 3 has only the first two.</summary>
public enum GuardSafety
{
    Safe,
    Unsafe,
    Controversial,
}

/// <summary>
/// What a guard model answered, parsed from its fixed format: the safety class, the categories it
/// named (Llama Guard 3: <c>S1</c>…<c>S14</c>; Qwen3Guard-Gen: <c>Violent</c>, <c>Jailbreak</c>, …;
/// empty when safe), and for Qwen3Guard's response moderation whether the answer was a refusal.
/// Carries no text of the conversation, so it may go to metrics and the audit record as it is.
/// </summary>
public sealed record GuardModelVerdict(GuardSafety Safety, IReadOnlyList<string> Categories, bool? Refusal = null)
{
    public bool IsSafe => Safety == GuardSafety.Safe;
}

/// <summary>A guard model's answer that does not follow its format (possible only where decoding was not constrained: an upstream), or no answer.</summary>
public sealed class GuardModelException(string message, Exception? inner = null) : Exception(message, inner);
