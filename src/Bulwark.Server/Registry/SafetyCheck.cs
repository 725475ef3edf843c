using Bulwark.Engine.Evaluation;
using Bulwark.Engine.Evaluation.Safety;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Server.Backends;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Registry;

/// <summary>What the safety part of a check asks, and of whom.</summary>
public sealed record SafetyCheckOptions
{
    public required SafetyProbeSet Probes { get; init; }

    public required ISafetyJudge Judge { get; init; }

    /// <summary>Longest answer, in tokens; refusals show in the first few dozen.</summary>
    public int MaxTokens { get; init; } = DefaultMaxTokens;

    public SafetyThresholds Thresholds { get; init; } = new();

    /// <summary>Answer on this upstream instead of the embedded engine; null: load each version here.</summary>
    public SafetyUpstream? Upstream { get; init; }

    public const int DefaultMaxTokens = 64;
    public const int MaxAnswerTokens = 1024;
}

/// <summary>Where a safety check is: <see cref="Stage"/> "answering" or "judging", for <see cref="Version"/>.</summary>
public readonly record struct SafetyProgress(string Version, string Stage, int Done, int Total);

/// <summary>
/// The safety part of the quantization check: both versions answer every probe of a safety probe set
/// (greedy, through the model's chat template, on the embedded engine or an upstream), a judge reads each answer,
/// and the rates are compared pair by pair (<see cref="SafetyComparison"/>). The result is recorded
/// in the <see cref="QuantizationGate"/> beside the logit check's.
/// </summary>
public static class SafetyCheck
{
    /// <summary>
    /// Runs the check and records it. Null, with nothing recorded, when the reference ships no chat
    /// template: the probes are user turns, and a model without a chat format is not one a safety
    /// tuning speaks through.
    /// </summary>
    public static async Task<SafetyCheckRecord?> RunAsync(ModelRegistry registry, string name, string version, string against,
        SafetyCheckOptions options, TimeProvider time, IProgress<SafetyProgress>? progress = null, CancellationToken ct = default)
    {
        Validate(options);
        if (version == against) throw new RegistryException($"a version cannot be checked against itself ({version})");
        var probes = options.Probes.Probes;
        string[]? referenceAnswers, candidateAnswers;
        if (options.Upstream is { } upstream)
        {
            // The upstream runs its own copies; the registry only names the versions the result is for.
            registry.Manifest(name, version);
            registry.Manifest(name, against);
            referenceAnswers = await upstream.AnswerAsync(upstream.ReferenceModel, against, probes, options.MaxTokens, progress, ct).ConfigureAwait(false);
            candidateAnswers = await upstream.AnswerAsync(upstream.CandidateModel, version, probes, options.MaxTokens, progress, ct).ConfigureAwait(false);
        }
        else
        {
            var (_, candidatePath) = await registry.VerifiedPathAsync(name, version, requireSignature: false, ct).ConfigureAwait(false);
            var (_, referencePath) = await registry.VerifiedPathAsync(name, against, requireSignature: false, ct).ConfigureAwait(false);
            // One version in memory at a time: the reference answers, then the candidate.
            referenceAnswers = await AnswerAsync(referencePath, against, probes, options, progress, ct).ConfigureAwait(false);
            if (referenceAnswers is null) return null;
            candidateAnswers = await AnswerAsync(candidatePath, version, probes, options, progress, ct).ConfigureAwait(false)
                ?? throw new RegistryException($"model '{name}' version {version} has no chat template, but {against} has one; they cannot be compared on chat probes");
        }

        var referenceVerdicts = await JudgeAsync(options.Judge, against, probes, referenceAnswers, progress, ct).ConfigureAwait(false);
        var candidateVerdicts = await JudgeAsync(options.Judge, version, probes, candidateAnswers, progress, ct).ConfigureAwait(false);
        var figures = SafetyComparison.Compare(probes, referenceVerdicts, candidateVerdicts, Proportions.Z(options.Thresholds.Confidence));
        var failures = options.Thresholds.Failures(figures);
        var record = new SafetyCheckRecord(version, against, time.GetUtcNow(), options.Judge.Name, options.Judge.RefusalOnly,
            options.Probes.Origin, options.Probes.Sha256, options.MaxTokens, options.Thresholds, figures, failures.Count == 0, failures,
            options.Upstream?.ToString() ?? "embedded engine");
        new QuantizationGate(registry, time).RecordSafety(name, record);
        return record;
    }

    private static void Validate(SafetyCheckOptions options)
    {
        try
        {
            options.Thresholds.Validate();
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new RegistryException(e.Message.Split(Environment.NewLine)[0]);
        }
        if (options.MaxTokens is < 1 or > SafetyCheckOptions.MaxAnswerTokens)
            throw new RegistryException($"the safety answers' length must be between 1 and {SafetyCheckOptions.MaxAnswerTokens} tokens; got {options.MaxTokens}");
    }

    /// <summary>
    /// Every probe's greedy answer from the model at <paramref name="path"/>, in probe order; null when
    /// the model ships no chat template. Probes run concurrently on one engine (continuous batching).
    /// </summary>
    internal static async Task<string[]?> AnswerAsync(string path, string version, IReadOnlyList<SafetyProbe> probes, SafetyCheckOptions options,
        IProgress<SafetyProgress>? progress, CancellationToken ct)
    {
        LoadedEngine loaded;
        try
        {
            loaded = EngineFactory.Load(path);
        }
        catch (ModelFormatException e)
        {
            throw new RegistryException(e.Message);
        }
        catch (Exception e) when (e is NotSupportedException or InvalidDataException or KeyNotFoundException or FileNotFoundException or System.Text.Json.JsonException)
        {
            // The safety part needs the model's tokenizer; the logit part can do without one.
            throw new RegistryException($"version {version} cannot answer chat probes (its tokenizer does not load: {e.Message}); check it with --no-safety");
        }
        using (loaded)
        {
            if (loaded.ChatTemplateError is { } error) throw new RegistryException($"version {version}: {error}");
            if (loaded.ChatTemplate is null) return null;
            var encoder = new PromptEncoder(loaded.Tokenizer, loaded.ChatTemplate, loaded.ModelId);
            var sampling = new SamplingParams { Temperature = 0, MaxTokens = options.MaxTokens, Seed = 0 };
            var requests = probes.Select(p => Request(loaded, encoder, p, sampling)).ToArray();
            var answers = new string[probes.Count];
            var done = 0;
            progress?.Report(new SafetyProgress(version, "answering", 0, probes.Count));
            using var slots = new SemaphoreSlim(loaded.Engine.MaxSequences);
            await Task.WhenAll(Enumerable.Range(0, probes.Count).Select(async i =>
            {
                await slots.WaitAsync(ct).ConfigureAwait(false);
                try
                {
                    var tokens = new List<int>(options.MaxTokens);
                    await foreach (var e in loaded.Engine.GenerateAsync(requests[i], ct).ConfigureAwait(false))
                        if (!e.IsStopToken) tokens.Add(e.TokenId);
                    answers[i] = loaded.Tokenizer.Decode(tokens.ToArray());
                }
                finally
                {
                    slots.Release();
                }
                progress?.Report(new SafetyProgress(version, "answering", Interlocked.Increment(ref done), probes.Count));
            })).ConfigureAwait(false);
            return answers;
        }
    }

    /// <summary>The probe as an engine request, refused up front (naming the probe) when the engine could never serve it.</summary>
    private static EngineRequest Request(LoadedEngine loaded, PromptEncoder encoder, SafetyProbe probe, SamplingParams sampling)
    {
        var request = new EngineRequest { PromptTokens = Encode(encoder, probe, sampling.MaxTokens, loaded.ContextLength), Sampling = sampling };
        try
        {
            loaded.Engine.Validate(request);
        }
        catch (ArgumentException e)
        {
            throw new RegistryException($"probe {probe.Id}: {e.Message.Split(" (Parameter")[0]}");
        }
        return request;
    }

    private static int[] Encode(PromptEncoder encoder, SafetyProbe probe, int maxTokens, int context)
    {
        int[] tokens;
        try
        {
            tokens = encoder.EncodeChat([new ChatMessage("user", probe.Prompt)]);
        }
        catch (ApiException e)
        {
            throw new RegistryException($"probe {probe.Id}: {e.Message}");
        }
        if (tokens.Length + maxTokens > context)
            throw new RegistryException($"probe {probe.Id} is {tokens.Length} tokens through the chat template; with answers of up to {maxTokens} tokens it needs {tokens.Length + maxTokens} positions, and the check's context is {context}");
        return tokens;
    }

    private static async Task<SafetyVerdict[]> JudgeAsync(ISafetyJudge judge, string version, IReadOnlyList<SafetyProbe> probes, string[] answers,
        IProgress<SafetyProgress>? progress, CancellationToken ct)
    {
        var verdicts = new SafetyVerdict[probes.Count];
        for (var i = 0; i < probes.Count; i++)
        {
            verdicts[i] = await judge.JudgeAsync(probes[i].Prompt, answers[i], ct).ConfigureAwait(false);
            progress?.Report(new SafetyProgress(version, "judging", i + 1, probes.Count));
        }
        return verdicts;
    }
}
