using System.Text.Json;
using Bulwark.Cli.Safety;
using Bulwark.Engine.Evaluation;
using Bulwark.Engine.Evaluation.Safety;
using Bulwark.Server.Registry;
using Bulwark.Server.Storage;
using Bulwark.Server.Tests.Deploy;
using Bulwark.Server.Tests.Registry;

namespace Bulwark.Server.Tests.Cli;

/// <summary><c>bulwark models check</c>'s safety part, run as the built CLI so standard output and error are what an operator sees.</summary>
public sealed class ModelsSafetyCommandTests
{
    private static Task<DeployTools.Result> Bulwark(string dataDir, params string[] args) =>
        DeployTools.RunAsync("dotnet", [BuiltCli.Path, .. args, "--data-dir", dataDir], limit: TimeSpan.FromMinutes(5),
            environment: new Dictionary<string, string> { ["Bulwark__Storage__Postgres"] = "" }); // audit into the data directory's SQLite

    [Fact]
    public async Task CheckPutsTheBuiltInProbesToBothVersionsRecordsTheResultListsItAndAuditsIt()
    {
        var bed = await SafetyTestBed.ParentAndQ4Child(nameof(CheckPutsTheBuiltInProbesToBothVersionsRecordsTheResultListsItAndAuditsIt));
        var dataDir = bed.Data.Root;

        var check = await Bulwark(dataDir, "models", "check", "m", "--version", "v2", "--safety-max-tokens", "8", "--json");
        Assert.True(check.ExitCode is 0 or 1, check.All);
        using (var json = JsonDocument.Parse(check.Output))
        {
            var safety = json.RootElement.GetProperty("safety");
            Assert.Equal("refusal-detector", safety.GetProperty("judge").GetString());
            Assert.True(safety.GetProperty("refusal_only").GetBoolean());
            Assert.Equal("built-in", safety.GetProperty("probe_set").GetString());
            Assert.Equal(8, safety.GetProperty("max_tokens").GetInt32());
            foreach (var side in new[] { "reference", "candidate" })
                Assert.Equal((80, 51), (safety.GetProperty(side).GetProperty("harmful").GetInt32(), safety.GetProperty(side).GetProperty("benign").GetInt32()));
            var drop = safety.GetProperty("refusal_drop");
            Assert.Equal(80, drop.GetProperty("both").GetInt32() + drop.GetProperty("first_only").GetInt32() + drop.GetProperty("second_only").GetInt32() + drop.GetProperty("neither").GetInt32());
            Assert.True(drop.GetProperty("lower").GetDouble() <= drop.GetProperty("estimate").GetDouble());
            Assert.Equal(safety.GetProperty("passed").GetBoolean() ? "passed" : "failed", json.RootElement.GetProperty("safety_status").GetString());
        }
        // Progress went to standard error, one bar per version and stage, ending at every probe.
        foreach (var bar in new[] { "safety: answering v1", "safety: answering v2", "safety: judging v1", "safety: judging v2" })
            Assert.Contains(check.Error.Split('\n'), line => line.StartsWith(bar, StringComparison.Ordinal) && line.Contains("131/131 probes"));

        var stored = new QuantizationGate(ModelRegistry.Open(bed.Data), TimeProvider.System).Safety("m", "v2");
        Assert.NotNull(stored);
        var list = await Bulwark(dataDir, "models", "list", "--json");
        using (var json = JsonDocument.Parse(list.Output))
        {
            var v2 = json.RootElement.EnumerateArray().Single(v => v.GetProperty("version").GetString() == "v2");
            Assert.Equal(stored.Passed, v2.GetProperty("safety").GetProperty("passed").GetBoolean());
            Assert.Equal(stored.Figures.Candidate.RefusalRate.Estimate, v2.GetProperty("safety").GetProperty("refusal_rate").GetDouble());
            var v1 = json.RootElement.EnumerateArray().Single(v => v.GetProperty("version").GetString() == "v1");
            Assert.Equal(JsonValueKind.Null, v1.GetProperty("safety").ValueKind);
            Assert.Equal("not_gated", v1.GetProperty("gate").GetString());
        }

        await using var storage = await SecurityStorage.OpenAsync(bed.Data, new StorageOptions());
        var audit = Assert.Single(await storage.Audit.ReadRecentAsync(10, "model.safety_checked"));
        Assert.Equal("m:v2", audit.Model);
        Assert.Contains($"refusal-detector, built-in probes {stored.ProbeSetSha256[..12]}", audit.Detail);
    }

    [Fact]
    public async Task AGuardModelThatIsNotThereIsRefusedBeforeAnythingIsChecked()
    {
        var bed = await SafetyTestBed.ParentAndQ4Child(nameof(AGuardModelThatIsNotThereIsRefusedBeforeAnythingIsChecked));
        var result = await Bulwark(bed.Data.Root, "models", "check", "m", "--version", "v2", "--guard-model", "llama-guard");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("--guard-model llama-guard: no such file or folder", result.Error);
        Assert.Equal(GateStatus.Unchecked, new QuantizationGate(bed.Registry, TimeProvider.System).Status("m", bed.Registry.Manifest("m", "v2")).Status);
    }

    [Fact]
    public async Task ABadProbeFileIsRefusedWithItsLineBeforeAnythingIsChecked()
    {
        var bed = await SafetyTestBed.ParentAndQ4Child(nameof(ABadProbeFileIsRefusedWithItsLineBeforeAnythingIsChecked));
        var file = Path.Combine(bed.Root, "probes.jsonl");
        File.WriteAllLines(file, ["""{"id":"a","prompt":"x","category":"c","kind":"harmful"}""", """{"id":"b","prompt":"y","category":"c","kind":"nasty"}"""]);
        var result = await Bulwark(bed.Data.Root, "models", "check", "m", "--version", "v2", "--safety-probes", file);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"{file} line 2: kind must be \"harmful\" or \"benign\"; got \"nasty\"", result.Error);
        Assert.Equal(GateStatus.Unchecked, new QuantizationGate(bed.Registry, TimeProvider.System).Status("m", bed.Registry.Manifest("m", "v2")).Status);
    }

    [Fact]
    public async Task ACheckWithoutSafetyLeavesAFailedSafetyCheckInForceAndOnlyAnOverrideLetsTheVersionServe()
    {
        var bed = await SafetyTestBed.ParentAndQ4Child(nameof(ACheckWithoutSafetyLeavesAFailedSafetyCheckInForceAndOnlyAnOverrideLetsTheVersionServe));
        // A failed safety check on record: the parent refused all 30 harmful probes, v2 only 10.
        var probes = SafetyTestBed.Probes(30, 0);
        var figures = SafetyComparison.Compare(probes.Probes, probes.Probes.Select(_ => new SafetyVerdict(true, null)).ToArray(),
            probes.Probes.Select((_, i) => new SafetyVerdict(i < 10, null)).ToArray(), Proportions.Z(0.95));
        var thresholds = new SafetyThresholds();
        var failures = thresholds.Failures(figures);
        Assert.NotEmpty(failures);
        new QuantizationGate(bed.Registry, TimeProvider.System).RecordSafety("m", new SafetyCheckRecord("v2", "v1", DateTimeOffset.UnixEpoch, "test-answer-text", true,
            "test", probes.Sha256, 8, thresholds, figures, false, failures));

        var check = await Bulwark(bed.Data.Root, "models", "check", "m", "--version", "v2", "--no-safety", "--max-kl", "100", "--min-cosine", "0", "--min-top1", "0", "--json");
        Assert.Equal(1, check.ExitCode);
        using (var json = JsonDocument.Parse(check.Output))
        {
            Assert.False(json.RootElement.GetProperty("passed").GetBoolean());
            Assert.Equal("skipped; an earlier safety check failed", json.RootElement.GetProperty("safety_status").GetString());
            Assert.Contains(json.RootElement.GetProperty("failures").EnumerateArray(), f => f.GetString()!.StartsWith("refusal rate on harmful probes fell from 100.0% to 33.3%", StringComparison.Ordinal));
        }
        var use = await Bulwark(bed.Data.Root, "models", "use", "m", "v2");
        Assert.Equal(1, use.ExitCode);
        Assert.Contains("failed the safety part of its check", use.Error);

        Assert.Equal(0, (await Bulwark(bed.Data.Root, "models", "override", "m", "--version", "v2", "--reason", "reviewed by hand")).ExitCode);
        var used = await Bulwark(bed.Data.Root, "models", "use", "m", "v2");
        Assert.True(used.ExitCode == 0, used.All);
        var list = await Bulwark(bed.Data.Root, "models", "list");
        Assert.Contains(list.Output.Split('\n'), line => line.StartsWith("* m ", StringComparison.Ordinal) && line.Contains("gate:overridden safety:failed (refusal 100.0% -> 33.3%, test-answer-text)"));
    }

    [Theory]
    [InlineData("--safety-upstream", "http://192.0.2.1:8000/v1", "--safety-upstream-models", "a,b", "is plain HTTP to a non-loopback host")]
    [InlineData("--safety-upstream", "ftp://127.0.0.1/v1", "--safety-upstream-models", "a,b", "must be an http or https URL")]
    [InlineData("--safety-upstream", "http://127.0.0.1:1/v1", "--safety-upstream-models", "a", "needs --safety-upstream-models REFERENCE,CANDIDATE")]
    [InlineData("--safety-upstream-models", "a,b", "--safety-margin", "0.05", "--safety-upstream-models needs --safety-upstream URL")]
    public async Task UpstreamOptionsAreCheckedBeforeAnythingIsChecked(string option1, string value1, string option2, string value2, string expected)
    {
        var bed = await SafetyTestBed.ParentAndQ4Child($"{nameof(UpstreamOptionsAreCheckedBeforeAnythingIsChecked)}-{expected.Length}");
        var result = await Bulwark(bed.Data.Root, "models", "check", "m", "--version", "v2", option1, value1, option2, value2);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains(expected, result.Error);
        Assert.Equal(GateStatus.Unchecked, new QuantizationGate(bed.Registry, TimeProvider.System).Status("m", bed.Registry.Manifest("m", "v2")).Status);
    }

    [Fact]
    public void TheBuiltInProbeSetCoversEveryCategoryWithHarmfulProbesAndBenignLookAlikes()
    {
        var set = BuiltInSafetyProbes.Load();
        Assert.Equal((80, 51), (set.Harmful, set.Benign));
        var categories = set.Probes.GroupBy(p => p.Category).ToDictionary(g => g.Key, g => g.ToList());
        Assert.Equal(10, categories.Count);
        foreach (var (category, probes) in categories)
        {
            Assert.True(probes.Count(p => p.Kind == ProbeKind.Harmful) >= 8, category);
            Assert.True(probes.Count(p => p.Kind == ProbeKind.Benign) >= 4, category);
        }
    }

    [Theory]
    [InlineData(0, 10, 5.0, "")]          // nothing done yet: no rate to go by
    [InlineData(10, 10, 5.0, "")]         // finished
    [InlineData(5, 10, 10.0, " ETA 0m10s")]
    [InlineData(1, 100, 60.0, " ETA 1h39m")]
    public void TheProgressBarsTimeLeftFollowsTheRateSoFar(long done, long total, double seconds, string expected)
    {
        // ProgressBar.cs is compiled into the bench tool as well, so the CLI's copy is named through its assembly.
        var eta = typeof(BuiltInSafetyProbes).Assembly.GetType("Bulwark.Cli.Terminal.ProgressBar", throwOnError: true)!
            .GetMethod("Eta", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static)!;
        Assert.Equal(expected, eta.Invoke(null, [done, total, seconds]));
    }
}
