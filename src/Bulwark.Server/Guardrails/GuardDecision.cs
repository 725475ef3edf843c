namespace Bulwark.Server.Guardrails;

/// <summary>The outcome of guarding one text (the fast scan, a guard model, or both), in increasing severity.</summary>
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
