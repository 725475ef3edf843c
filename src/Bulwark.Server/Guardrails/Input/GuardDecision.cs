namespace Bulwark.Server.Guardrails.Input;

/// <summary>The outcome of scanning one text, in increasing severity.</summary>
public enum GuardDecision
{
    Allow,
    Flag,
    Block,
}

public static class GuardDecisionNames
{
    public static string Name(this GuardDecision decision) => decision.ToString().ToLowerInvariant();
}
