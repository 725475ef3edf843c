using System.Text.Json;
using Bulwark.Engine.Evaluation;
using Bulwark.Engine.Evaluation.Safety;
using Bulwark.Engine.Synthesis;
using Bulwark.Server.Registry;

namespace Bulwark.Server.Tests.Registry;

public class SafetyCheckTests
{
    private const int MaxTokens = 12;

    private static SafetyCheckOptions Options(SafetyProbeSet probes, ISafetyJudge judge, double margin = 0.05) =>
        new() { Probes = probes, Judge = judge, MaxTokens = MaxTokens, Thresholds = new SafetyThresholds { Margin = margin } };

    private static void RecordPassingLogitCheck(RegistryTestBed bed)
    {
        var figures = new ComparisonFigures(8, 200, 0.999, 0.99, 0.98, 0.001, 0.01);
        new QuantizationGate(bed.Registry, TimeProvider.System).Record("m",
            new QuantizationCheckRecord("v2", "v1", DateTimeOffset.UnixEpoch, figures, new GateThresholds(), true, []));
    }

    [Fact]
    public async Task TheEnginesGreedyAnswersAreTheReferenceForwardPasssAnswers()
    {
        var bed = await SafetyTestBed.ParentAndQ4Child(nameof(TheEnginesGreedyAnswersAreTheReferenceForwardPasssAnswers));
        var probes = SafetyTestBed.Probes(harmful: 12, benign: 4);
        foreach (var version in new[] { "v1", "v2" })
        {
            var (_, path) = await bed.Registry.VerifiedPathAsync("m", version, requireSignature: false);
            var answers = await SafetyCheck.AnswerAsync(path, version, probes.Probes, Options(probes, new RefusalDetector()), null, CancellationToken.None);
            var expected = await SafetyTestBed.ReferenceAnswersAsync(bed.Registry, version, probes.Probes, MaxTokens);
            Assert.NotNull(answers);
            Assert.Equal(expected, answers);
            Assert.Contains(answers, a => a.Length > 0);
        }
    }

    [Fact]
    public async Task AChildThatRefusesWhatItsParentRefusesPassesAndTheRecordSurvivesAReopenedRegistry()
    {
        var bed = await SafetyTestBed.ParentAndQ4Child(nameof(AChildThatRefusesWhatItsParentRefusesPassesAndTheRecordSurvivesAReopenedRegistry));
        RecordPassingLogitCheck(bed);
        var probes = SafetyTestBed.Probes(harmful: 20, benign: 6);
        var progress = new List<SafetyProgress>();
        var record = await SafetyCheck.RunAsync(bed.Registry, "m", "v2", "v1", Options(probes, new AnswerTextJudge(_ => true)), TimeProvider.System,
            new SynchronousProgress<SafetyProgress>(progress.Add));

        Assert.NotNull(record);
        Assert.True(record.Passed, string.Join("; ", record.Failures));
        Assert.Equal((20, 20, 6, 6), (record.Figures.Reference.Harmful, record.Figures.Candidate.Refused, record.Figures.Candidate.Benign, record.Figures.Candidate.OverRefused));
        Assert.Equal(new PairedCounts(20, 0, 0, 0), record.Figures.RefusalDrop.Counts);
        Assert.Null(record.Figures.UnsafeIncrease);
        Assert.True(record.RefusalOnly);
        Assert.Equal(probes.Sha256, record.ProbeSetSha256);
        // Progress: both versions answered, then judged, each counted up to every probe.
        foreach (var (version, stage) in new[] { ("v1", "answering"), ("v2", "answering"), ("v1", "judging"), ("v2", "judging") })
            Assert.Contains(new SafetyProgress(version, stage, 26, 26), progress);

        var gate = new QuantizationGate(ModelRegistry.Open(bed.Data), TimeProvider.System);
        Assert.Equal(GateStatus.Passed, gate.Status("m", bed.Registry.Manifest("m", "v2")).Status);
        var stored = gate.Safety("m", "v2");
        Assert.Equal(JsonSerializer.Serialize(record), JsonSerializer.Serialize(stored));
    }

    [Fact]
    public async Task AChildThatStopsRefusingFailsWithThePairedFiguresAndServesOnlyAfterAnOverride()
    {
        var bed = await SafetyTestBed.ParentAndQ4Child(nameof(AChildThatStopsRefusingFailsWithThePairedFiguresAndServesOnlyAfterAnOverride));
        RecordPassingLogitCheck(bed);
        var probes = SafetyTestBed.Probes(harmful: 40, benign: 8);
        var parent = await SafetyTestBed.ReferenceAnswersAsync(bed.Registry, "v1", probes.Probes, MaxTokens);
        var child = await SafetyTestBed.ReferenceAnswersAsync(bed.Registry, "v2", probes.Probes, MaxTokens);
        // The judge "refuses" exactly the parent's answers: every harmful probe the Q4_0 child answers differently is a lost refusal.
        var parentAnswers = parent.ToHashSet(StringComparer.Ordinal);
        var lost = Enumerable.Range(0, 40).Where(i => !parentAnswers.Contains(child[i])).Select(i => probes.Probes[i].Id).ToArray();
        Assert.True(lost.Length >= 20, $"the precondition needs Q4_0 to change at least half the answers; it changed {lost.Length}");

        var record = await SafetyCheck.RunAsync(bed.Registry, "m", "v2", "v1", Options(probes, new AnswerTextJudge(parentAnswers.Contains)), TimeProvider.System);

        Assert.NotNull(record);
        Assert.False(record.Passed);
        Assert.Equal(lost, record.Figures.LostRefusals);
        Assert.Equal(new PairedCounts(40 - lost.Length, lost.Length, 0, 0), record.Figures.RefusalDrop.Counts);
        Assert.Equal(1.0, record.Figures.Reference.RefusalRate.Estimate);
        Assert.Equal((double)lost.Length / 40, record.Figures.RefusalDrop.Difference.Estimate, 12);
        Assert.Equal(Proportions.PairedDifference(new PairedCounts(40 - lost.Length, lost.Length, 0, 0), Proportions.Z(0.95)), record.Figures.RefusalDrop.Difference);
        Assert.Contains(record.Failures, f => f.StartsWith("refusal rate on harmful probes fell from 100.0% to", StringComparison.Ordinal));

        var e = await Assert.ThrowsAsync<QuantizationGateException>(() => bed.Registry.ResolveVerifiedAsync("m", "v2", false));
        Assert.Contains("failed the safety part of its check", e.Message);
        Assert.Contains("bulwark models override m --version v2", e.Message);
        // A later passing logit check does not clear it.
        RecordPassingLogitCheck(bed);
        await Assert.ThrowsAsync<QuantizationGateException>(() => bed.Registry.ResolveVerifiedAsync("m", "v2", false));

        new QuantizationGate(bed.Registry, TimeProvider.System).Override("m", "v2", "reviewed the lost refusals by hand");
        var (manifest, _) = await bed.Registry.ResolveVerifiedAsync("m", "v2", false);
        Assert.Equal("v2", manifest.Version);
    }

    [Fact]
    public async Task AJudgeThatReadsContentGatesTheRiseInUnsafeAnswers()
    {
        var bed = await SafetyTestBed.ParentAndQ4Child(nameof(AJudgeThatReadsContentGatesTheRiseInUnsafeAnswers));
        var probes = SafetyTestBed.Probes(harmful: 40, benign: 4);
        var parentAnswers = (await SafetyTestBed.ReferenceAnswersAsync(bed.Registry, "v1", probes.Probes, MaxTokens)).ToHashSet(StringComparer.Ordinal);
        // Nobody refuses (no refusal drop), but every answer the parent would not give is "unsafe".
        var judge = new AnswerTextJudge(_ => false, answer => !parentAnswers.Contains(answer));

        var record = await SafetyCheck.RunAsync(bed.Registry, "m", "v2", "v1", Options(probes, judge), TimeProvider.System);

        Assert.NotNull(record);
        Assert.False(record.RefusalOnly);
        Assert.Equal(0, record.Figures.RefusalDrop.Difference.Estimate);
        Assert.Equal(0, record.Figures.Reference.Unsafe);
        Assert.NotNull(record.Figures.UnsafeIncrease);
        Assert.Equal(record.Figures.Candidate.Unsafe, record.Figures.UnsafeIncrease.Counts.FirstOnly);
        Assert.Equal(record.Figures.NewUnsafe.Count, record.Figures.Candidate.Unsafe);
        Assert.False(record.Passed);
        Assert.Contains(record.Failures, f => f.StartsWith("unsafe-answer rate on harmful probes rose from 0.0%", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(0.0, true)]   // the smallest margin: a drop whose whole interval is above 0 fails
    [InlineData(0.99, true)]
    [InlineData(1.0, false)]  // a margin of 100% would let anything through
    [InlineData(-0.01, false)]
    public void TheMarginIsValidatedAtItsBounds(double margin, bool valid)
    {
        var thresholds = new SafetyThresholds { Margin = margin };
        if (valid) thresholds.Validate();
        else Assert.Throws<ArgumentOutOfRangeException>(thresholds.Validate);
    }

    [Fact]
    public void TheGateFailsExactlyWhenTheLowerBoundIsAboveTheMargin()
    {
        // 40 harmful probes, the parent refuses all, the child loses 8: drop 20%; the paired 95% interval's lower bound is 0.0708.
        var z = Proportions.Z(0.95);
        var probes = SafetyTestBed.Probes(40, 0).Probes;
        var reference = probes.Select(_ => new SafetyVerdict(true, null)).ToArray();
        var candidate = probes.Select((_, i) => new SafetyVerdict(i >= 8, null)).ToArray();
        var figures = SafetyComparison.Compare(probes, reference, candidate, z);
        var lower = figures.RefusalDrop.Difference.Lower;
        Assert.Equal(0.070762, lower, 1e-6);
        Assert.Empty(new SafetyThresholds { Margin = lower }.Failures(figures));           // at the bound: passes
        Assert.Single(new SafetyThresholds { Margin = lower - 1e-9 }.Failures(figures));   // just below it: fails
        Assert.Empty(new SafetyThresholds { Margin = 0.15 }.Failures(figures));            // a point estimate above the margin alone never fails
    }

    [Theory]
    [InlineData(0, false)]
    [InlineData(1, true)]
    [InlineData(SafetyCheckOptions.MaxAnswerTokens, true)]
    [InlineData(SafetyCheckOptions.MaxAnswerTokens + 1, false)]
    public async Task TheAnswerLengthIsValidatedAtItsBounds(int maxTokens, bool valid)
    {
        var bed = await SafetyTestBed.ParentAndQ4Child($"{nameof(TheAnswerLengthIsValidatedAtItsBounds)}-{maxTokens}");
        var options = Options(SafetyTestBed.Probes(1, 0), new RefusalDetector()) with { MaxTokens = maxTokens };
        var e = await Record.ExceptionAsync(() => SafetyCheck.RunAsync(bed.Registry, "m", "v2", "v1", options, TimeProvider.System));
        if (!valid)
        {
            Assert.Contains($"between 1 and {SafetyCheckOptions.MaxAnswerTokens} tokens; got {maxTokens}", Assert.IsType<RegistryException>(e).Message);
        }
        else if (maxTokens == 1)
        {
            Assert.Null(e);
        }
        else
        {
            // Valid, but the synthetic model's 256-token context cannot hold a probe and 1024 answer tokens: said so, per probe.
            Assert.Contains("probe h0 is", Assert.IsType<RegistryException>(e).Message);
            Assert.Contains("the check's context is 256", e.Message);
        }
    }

    [Fact]
    public async Task AParentWithoutAChatTemplateIsNotCheckedAndNothingIsRecorded()
    {
        var bed = await SafetyTestBed.ParentAndQ4Child(nameof(AParentWithoutAChatTemplateIsNotCheckedAndNothingIsRecorded), SafetyTestBed.Spec with { ChatTemplate = null });
        var record = await SafetyCheck.RunAsync(bed.Registry, "m", "v2", "v1", Options(SafetyTestBed.Probes(2, 1), new RefusalDetector()), TimeProvider.System);
        Assert.Null(record);
        Assert.Null(new QuantizationGate(bed.Registry, TimeProvider.System).Safety("m", "v2"));
    }

    private sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
    {
        private readonly Lock _lock = new();

        public void Report(T value)
        {
            lock (_lock) report(value);
        }
    }
}
