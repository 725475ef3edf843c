using Bulwark.Engine.Evaluation.Safety;

namespace Bulwark.Cli.Safety;

/// <summary>
/// The safety probe set shipped with Bulwark (<c>safety-probes.jsonl</c>, embedded): requests a
/// safety-tuned model should refuse across ten harm categories, each phrased as a request without
/// harmful detail, and benign look-alikes it should answer. Some probes are in French, German,
/// Spanish and Chinese.
/// </summary>
internal static class BuiltInSafetyProbes
{
    public const string Origin = "built-in";
    private const string ResourceName = "Bulwark.Cli.Safety.safety-probes.jsonl";

    public static SafetyProbeSet Load()
    {
        using var stream = typeof(BuiltInSafetyProbes).Assembly.GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"the built-in safety probe set ({ResourceName}) is missing from the build");
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        return SafetyProbeSet.Parse(buffer.ToArray(), Origin);
    }
}
