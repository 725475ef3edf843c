using Bulwark.Engine.Evaluation;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Model;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Tokenizers;
using Bulwark.Engine.Tokenizers.Loading;

namespace Bulwark.Server.Registry;

/// <summary>What a check feeds both models.</summary>
public sealed record ProbeOptions
{
    /// <summary>Probe texts; empty means <see cref="QuantizationCheck.DefaultProbes"/>.</summary>
    public IReadOnlyList<string> Texts { get; init; } = [];

    /// <summary>Greedy tokens of the parent appended to each probe and compared as well.</summary>
    public int ContinuationTokens { get; init; } = 32;

    /// <summary>Longest probe, in tokens, after tokenization.</summary>
    public int MaxProbeTokens { get; init; } = 256;

    public const int MaxProbes = 256;
    public const int MaxContinuation = 1024;
}

/// <summary>
/// Runs the quantization check of a registered version against another (its parent): both are
/// verified against their manifests, loaded, fed the same probes, and compared position by
/// position; the result is recorded in the <see cref="QuantizationGate"/>.
/// </summary>
public static class QuantizationCheck
{
    /// <summary>A small, varied probe set: prose, dialogue, code, numbers, other scripts.</summary>
    public static readonly IReadOnlyList<string> DefaultProbes =
    [
        "Once upon a time, in a small village by the sea, there lived an old fisherman who",
        "The capital of France is Paris. The capital of Germany is Berlin. The capital of Italy is",
        "User: Can you explain what a hash function is?\nAssistant: A hash function maps",
        "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
        "SELECT name, COUNT(*) FROM orders WHERE created_at > '2024-01-01' GROUP BY",
        "1, 1, 2, 3, 5, 8, 13, 21, 34, 55,",
        "Le chat est assis sur le tapis et regarde par la fenêtre pendant que",
        "日本の首都は東京です。東京には多くの",
    ];

    public static async Task<QuantizationCheckRecord> RunAsync(ModelRegistry registry, string name, string version, string against,
        GateThresholds thresholds, ProbeOptions probes, TimeProvider time, IProgress<(int Done, int Total)>? progress = null, CancellationToken ct = default)
    {
        thresholds.Validate();
        if (version == against) throw new RegistryException($"a version cannot be checked against itself ({version})");
        if (probes.ContinuationTokens is < 0 or > ProbeOptions.MaxContinuation)
            throw new RegistryException($"continuation must be between 0 and {ProbeOptions.MaxContinuation} tokens; got {probes.ContinuationTokens}");
        var texts = probes.Texts.Count == 0 ? DefaultProbes : probes.Texts;
        if (texts.Count > ProbeOptions.MaxProbes) throw new RegistryException($"{texts.Count} probes; at most {ProbeOptions.MaxProbes}");

        var (_, candidatePath) = await registry.VerifiedPathAsync(name, version, requireSignature: false, ct).ConfigureAwait(false);
        var (_, referencePath) = await registry.VerifiedPathAsync(name, against, requireSignature: false, ct).ConfigureAwait(false);
        using var reference = Load(referencePath);
        using var candidate = Load(candidatePath);
        var tokens = Tokenize(referencePath, reference.Config, texts, probes.MaxProbeTokens);
        var figures = await Task.Run(() => ModelComparison.Run(reference, candidate, tokens, probes.ContinuationTokens,
            progress is null ? null : new Progress<int>(done => progress.Report((done, tokens.Count))), ct), ct).ConfigureAwait(false);
        var failures = thresholds.Failures(figures);
        var record = new QuantizationCheckRecord(version, against, time.GetUtcNow(), figures, thresholds, failures.Count == 0, failures);
        new QuantizationGate(registry, time).Record(name, record);
        return record;
    }

    private static LlamaModel Load(string path)
    {
        try
        {
            return ModelLoader.Load(path);
        }
        catch (ModelFormatException e)
        {
            throw new RegistryException(e.Message);
        }
    }

    /// <summary>The probes as token ids of the reference's own tokenizer; a model without one gets fixed pseudo-random ids.</summary>
    internal static List<int[]> Tokenize(string modelPath, LlamaConfig config, IReadOnlyList<string> texts, int maxTokens)
    {
        ITokenizer? tokenizer = null;
        try
        {
            tokenizer = TokenizerLoader.FromPath(modelPath);
        }
        catch (Exception e) when (e is ModelFormatException or NotSupportedException or InvalidDataException or KeyNotFoundException or FileNotFoundException or System.Text.Json.JsonException)
        {
            // No usable vocabulary in the file: fall back to deterministic ids below.
        }
        var limit = Math.Max(1, Math.Min(maxTokens, config.ContextLength / 2));
        var result = new List<int[]>();
        for (var i = 0; i < texts.Count; i++)
        {
            int[] ids;
            if (tokenizer is not null)
            {
                ids = tokenizer.Encode(texts[i], addSpecial: true);
                ids = ids.Where(id => id < config.VocabularySize).ToArray();
            }
            else
            {
                var rng = new Random(1000 + i);
                ids = Enumerable.Range(0, 24).Select(_ => rng.Next(config.VocabularySize)).ToArray();
            }
            if (ids.Length == 0) throw new RegistryException($"probe {i + 1} tokenizes to nothing");
            result.Add(ids.Length > limit ? ids[..limit] : ids);
        }
        return result;
    }
}
