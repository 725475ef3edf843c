using System.Text.Json;
using System.Text.Json.Serialization;
using Bulwark.Engine.Evaluation;

namespace Bulwark.Server.Registry;

/// <summary>The figures a quantized version must reach against its parent before it may serve.</summary>
public sealed record GateThresholds
{
    /// <summary>Mean cosine similarity of the logit rows.</summary>
    public double MinMeanCosine { get; init; } = 0.99;

    /// <summary>Share of positions where both models pick the same top token.</summary>
    public double MinTop1Agreement { get; init; } = 0.90;

    /// <summary>Mean KL divergence (nats) of the candidate's next-token distribution from the parent's.</summary>
    public double MaxMeanKl { get; init; } = 0.05;

    public void Validate()
    {
        if (!(MinMeanCosine is >= -1 and <= 1)) throw new ArgumentOutOfRangeException(nameof(MinMeanCosine), MinMeanCosine, "must be between -1 and 1");
        if (!(MinTop1Agreement is >= 0 and <= 1)) throw new ArgumentOutOfRangeException(nameof(MinTop1Agreement), MinTop1Agreement, "must be between 0 and 1");
        if (!(MaxMeanKl >= 0) || double.IsInfinity(MaxMeanKl)) throw new ArgumentOutOfRangeException(nameof(MaxMeanKl), MaxMeanKl, "must be a finite number ≥ 0");
    }

    /// <summary>Each figure that misses its threshold, described for an operator; empty when all pass.</summary>
    public IReadOnlyList<string> Failures(ComparisonFigures f)
    {
        var failures = new List<string>();
        if (!(f.MeanCosine >= MinMeanCosine)) failures.Add($"mean logit cosine {f.MeanCosine:F5} < {MinMeanCosine}");
        if (!(f.Top1Agreement >= MinTop1Agreement)) failures.Add($"top-1 agreement {f.Top1Agreement:P2} < {MinTop1Agreement:P2}");
        if (!(f.MeanKl <= MaxMeanKl)) failures.Add($"mean KL divergence {f.MeanKl:F5} > {MaxMeanKl}");
        return failures;
    }
}

/// <summary>The outcome of <c>bulwark models check</c> for one version.</summary>
public sealed record QuantizationCheckRecord(
    string Version, string Against, DateTimeOffset CheckedAt, ComparisonFigures Figures, GateThresholds Thresholds,
    bool Passed, IReadOnlyList<string> Failures);

/// <summary>An operator's decision to serve a version despite its check.</summary>
public sealed record GateOverride(string Version, DateTimeOffset At, string Reason);

public enum GateStatus
{
    /// <summary>Not a quantized child of another version: the gate does not apply.</summary>
    NotGated,
    Passed,
    Failed,
    /// <summary>Quantized from a parent but never checked against it.</summary>
    Unchecked,
    /// <summary>Failed or unchecked, and an operator allowed it to serve anyway.</summary>
    Overridden,
}

/// <summary>A version the quantization gate keeps from serving.</summary>
public sealed class QuantizationGateException(string message) : RegistryException(message);

/// <summary>
/// The quantization gate: a version quantized from a parent serves only once a check against that
/// parent passed (the logit comparison, and the safety comparison when one was run), or an operator
/// overrode the gate for it. Results live beside the registry's
/// state in <c>&lt;name&gt;/checks.json</c> (not inside the version folder, whose files the
/// manifest pins).
/// </summary>
public sealed class QuantizationGate(ModelRegistry registry, TimeProvider time)
{
    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    private const int MaxFileBytes = 4 << 20;

    public static bool IsGated(ModelManifest manifest) => manifest.Quantization is not null && manifest.Parent is not null;

    public void Record(string name, QuantizationCheckRecord record)
    {
        registry.Manifest(name, record.Version); // the version must exist
        Update(name, file => file.Checks[record.Version] = record);
    }

    /// <summary>
    /// Records the safety part of a check. A version whose latest safety check failed is held back
    /// even when its logit check passed; a later logit-only check (<c>--no-safety</c>) leaves it failed.
    /// </summary>
    public void RecordSafety(string name, SafetyCheckRecord record)
    {
        registry.Manifest(name, record.Version);
        Update(name, file => file.Safety[record.Version] = record);
    }

    /// <summary>The latest safety check of a version; null when it never had one.</summary>
    public SafetyCheckRecord? Safety(string name, string version) =>
        Read(name).Safety.TryGetValue(version, out var record) ? record : null;

    public GateOverride Override(string name, string version, string reason)
    {
        if (string.IsNullOrWhiteSpace(reason)) throw new RegistryException("an override needs a reason (it is kept with the model's history and audited)");
        if (reason.Length > 1000) throw new RegistryException($"the override reason is {reason.Length} characters; at most 1000");
        registry.Manifest(name, version);
        var entry = new GateOverride(version, time.GetUtcNow(), reason.Trim());
        Update(name, file => file.Overrides[version] = entry);
        return entry;
    }

    public (GateStatus Status, QuantizationCheckRecord? Check, GateOverride? Override) Status(string name, ModelManifest manifest)
    {
        if (!IsGated(manifest)) return (GateStatus.NotGated, null, null);
        var file = Read(name);
        file.Checks.TryGetValue(manifest.Version, out var check);
        file.Overrides.TryGetValue(manifest.Version, out var over);
        file.Safety.TryGetValue(manifest.Version, out var safety);
        if (check is { Passed: true } && safety is null or { Passed: true }) return (GateStatus.Passed, check, over);
        if (over is not null) return (GateStatus.Overridden, check, over);
        return (check is null ? GateStatus.Unchecked : GateStatus.Failed, check, null);
    }

    /// <summary>Throws <see cref="QuantizationGateException"/> when the gate keeps this version from serving.</summary>
    public void EnsureServable(string name, ModelManifest manifest)
    {
        var (status, check, _) = Status(name, manifest);
        var safety = status == GateStatus.Failed && check!.Passed ? Safety(name, manifest.Version) : null;
        var overrideHint = $"`bulwark models override {name} --version {manifest.Version} --reason \"...\"`";
        switch (status)
        {
            case GateStatus.Failed when safety is not null:
                throw new QuantizationGateException(
                    $"model '{name}' version {manifest.Version} ({manifest.Quantization} of {manifest.Parent}) failed the safety part of its check against {safety.Against} " +
                    $"({string.Join("; ", safety.Failures)}) and will not serve; serve {manifest.Parent} instead, or accept it with {overrideHint}");
            case GateStatus.Failed:
                throw new QuantizationGateException(
                    $"model '{name}' version {manifest.Version} ({manifest.Quantization} of {manifest.Parent}) failed its quantization check " +
                    $"({string.Join("; ", check!.Failures)}) and will not serve; serve {manifest.Parent} instead, or accept it with {overrideHint}");
            case GateStatus.Unchecked:
                throw new QuantizationGateException(
                    $"model '{name}' version {manifest.Version} is a {manifest.Quantization} quantization of {manifest.Parent} that was never checked against it; " +
                    $"run `bulwark models check {name} --version {manifest.Version} --against {manifest.Parent}` first, or accept it unchecked with {overrideHint}");
        }
    }

    private sealed class GateFile
    {
        public Dictionary<string, QuantizationCheckRecord> Checks { get; set; } = new(StringComparer.Ordinal);
        public Dictionary<string, GateOverride> Overrides { get; set; } = new(StringComparer.Ordinal);
        public Dictionary<string, SafetyCheckRecord> Safety { get; set; } = new(StringComparer.Ordinal);
    }

    private string PathOf(string name) => Path.Combine(registry.ModelFolderPath(name), "checks.json");

    private GateFile Read(string name)
    {
        var path = PathOf(name);
        if (!File.Exists(path)) return new GateFile();
        if (new FileInfo(path).Length > MaxFileBytes) throw new RegistryException($"{path}: larger than {MaxFileBytes} bytes; refusing to read it");
        try
        {
            return JsonSerializer.Deserialize<GateFile>(File.ReadAllBytes(path), Json) ?? new GateFile();
        }
        catch (JsonException e)
        {
            throw new RegistryException($"{path}: not a valid quantization-gate file ({e.Message})");
        }
    }

    private void Update(string name, Action<GateFile> change)
    {
        using var _ = RegistryLock.Acquire(registry.ModelFolderPath(name));
        var file = Read(name);
        change(file);
        var path = PathOf(name);
        var temp = path + "." + Guid.NewGuid().ToString("N") + ".tmp";
        File.WriteAllBytes(temp, JsonSerializer.SerializeToUtf8Bytes(file, Json));
        File.Move(temp, path, overwrite: true);
    }
}
