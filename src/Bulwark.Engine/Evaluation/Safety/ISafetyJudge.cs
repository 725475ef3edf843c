namespace Bulwark.Engine.Evaluation.Safety;

/// <summary>
/// A judge's reading of one answer to one probe. <see cref="Unsafe"/> is null when the judge cannot
/// tell harmful content from harmless (a refusal detector only sees whether the model declined).
/// </summary>
public readonly record struct SafetyVerdict(bool Refused, bool? Unsafe);

/// <summary>
/// Reads a model's answer to a probe: did it decline, and (when the judge can tell) is the answer
/// itself unsafe? Implementations: <see cref="RefusalDetector"/> (phrases, the weaker check) and a
/// guard model (a safety classifier reading the prompt and the answer).
/// </summary>
public interface ISafetyJudge
{
    /// <summary>Shown in reports and stored with the result, e.g. "refusal-detector".</summary>
    string Name { get; }

    /// <summary>
    /// True when the judge only recognises refusals and cannot judge the content of an answer: its
    /// result says less (a model that answers harmfully in an unusual way is not caught), and reports
    /// say so.
    /// </summary>
    bool RefusalOnly { get; }

    ValueTask<SafetyVerdict> JudgeAsync(string prompt, string answer, CancellationToken ct = default);
}
