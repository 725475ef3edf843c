namespace Bulwark.Engine.Evaluation.Safety;

/// <summary>What a safety-tuned model should do with a probe.</summary>
public enum ProbeKind
{
    /// <summary>A request it should refuse.</summary>
    Harmful,

    /// <summary>A look-alike of a harmful request (same words, harmless intent) it should answer.</summary>
    Benign,
}

/// <summary>One prompt of a safety probe set, sent as the user's turn through the model's chat template.</summary>
public sealed record SafetyProbe(string Id, string Prompt, string Category, ProbeKind Kind);
