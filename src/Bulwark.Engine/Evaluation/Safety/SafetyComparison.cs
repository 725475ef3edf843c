namespace Bulwark.Engine.Evaluation.Safety;

/// <summary>
/// One version's safety rates on a probe set, each with its Wilson interval. Rates on harmful probes:
/// <see cref="RefusalRate"/>, and <see cref="UnsafeRate"/> when the judge reads content (null for a
/// refusal detector). On benign look-alikes: <see cref="OverRefusalRate"/> (null when the set has none).
/// </summary>
public sealed record SafetyRates(
    int Harmful, int Refused, ProportionInterval RefusalRate, int? Unsafe, ProportionInterval? UnsafeRate,
    int Benign, int OverRefused, ProportionInterval? OverRefusalRate);

/// <summary>A paired change between the reference and the candidate, with the cells it was computed from.</summary>
public sealed record SafetyChange(PairedCounts Counts, ProportionInterval Difference);

/// <summary>
/// Both versions' rates and the paired changes from the reference to the candidate:
/// <see cref="RefusalDrop"/> = reference refusal rate − candidate's (positive: the candidate refuses
/// less), <see cref="UnsafeIncrease"/> = candidate unsafe rate − reference's, and
/// <see cref="OverRefusalIncrease"/> = candidate over-refusal rate − reference's; plus the harmful
/// probes behind the regressions, by id.
/// </summary>
public sealed record SafetyFigures(
    SafetyRates Reference, SafetyRates Candidate, SafetyChange RefusalDrop, SafetyChange? UnsafeIncrease, SafetyChange? OverRefusalIncrease,
    IReadOnlyList<string> LostRefusals, IReadOnlyList<string> NewUnsafe);

/// <summary>
/// Compares two versions' judged answers to the same probes. Each probe is a pair (the same prompt
/// answered by both), so changes use the paired interval (<see cref="Proportions.PairedDifference"/>),
/// which is much narrower than two independent intervals when the versions mostly agree.
/// </summary>
public static class SafetyComparison
{
    public static SafetyFigures Compare(IReadOnlyList<SafetyProbe> probes, IReadOnlyList<SafetyVerdict> reference, IReadOnlyList<SafetyVerdict> candidate, double z)
    {
        if (reference.Count != probes.Count || candidate.Count != probes.Count)
            throw new ArgumentException($"{probes.Count} probes but {reference.Count} reference and {candidate.Count} candidate verdicts");
        var harmful = Enumerable.Range(0, probes.Count).Where(i => probes[i].Kind == ProbeKind.Harmful).ToArray();
        var benign = Enumerable.Range(0, probes.Count).Where(i => probes[i].Kind == ProbeKind.Benign).ToArray();
        if (harmful.Length == 0) throw new ArgumentException("the probe set has no harmful probe", nameof(probes));
        // Content is judged only when every verdict carries it: a mix would compare different things.
        var judgesContent = reference.Concat(candidate).All(v => v.Unsafe is not null);

        var refusalDrop = Change(harmful.Select(i => (reference[i].Refused, candidate[i].Refused)), z);
        var unsafeIncrease = judgesContent ? Change(harmful.Select(i => (candidate[i].Unsafe!.Value, reference[i].Unsafe!.Value)), z) : null;
        var overRefusal = benign.Length > 0 ? Change(benign.Select(i => (candidate[i].Refused, reference[i].Refused)), z) : null;
        return new SafetyFigures(
            Rates(reference, harmful, benign, judgesContent, z),
            Rates(candidate, harmful, benign, judgesContent, z),
            refusalDrop, unsafeIncrease, overRefusal,
            harmful.Where(i => reference[i].Refused && !candidate[i].Refused).Select(i => probes[i].Id).ToArray(),
            judgesContent ? harmful.Where(i => candidate[i].Unsafe == true && reference[i].Unsafe == false).Select(i => probes[i].Id).ToArray() : []);
    }

    private static SafetyChange Change(IEnumerable<(bool First, bool Second)> pairs, double z)
    {
        var counts = PairedCounts.Of(pairs);
        return new SafetyChange(counts, Proportions.PairedDifference(counts, z));
    }

    private static SafetyRates Rates(IReadOnlyList<SafetyVerdict> verdicts, int[] harmful, int[] benign, bool judgesContent, double z)
    {
        var refused = harmful.Count(i => verdicts[i].Refused);
        int? unsafeCount = judgesContent ? harmful.Count(i => verdicts[i].Unsafe == true) : null;
        var overRefused = benign.Count(i => verdicts[i].Refused);
        return new SafetyRates(
            harmful.Length, refused, Proportions.Wilson(refused, harmful.Length, z),
            unsafeCount, unsafeCount is { } u ? Proportions.Wilson(u, harmful.Length, z) : null,
            benign.Length, overRefused, benign.Length > 0 ? Proportions.Wilson(overRefused, benign.Length, z) : null);
    }
}
