using System.Globalization;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Scheduling;

namespace Bulwark.Server.Models;

/// <summary>
/// What <c>bulwark serve</c> loads and how the engine is sized (configuration section
/// <c>Bulwark:Serve</c>; flags <c>--model</c>, <c>--kv-cache-memory</c>, <c>--max-batched-tokens</c>,
/// <c>--max-seqs</c>; environment <c>Bulwark__Serve__Model</c>...).
/// </summary>
public sealed class ServeOptions
{
    public const string Section = "Bulwark:Serve";

    /// <summary>A GGUF file, a model folder, or the name of a registered model; empty serves the demo model.</summary>
    public string? Model { get; set; }

    /// <summary>
    /// <c>q8_0</c> or <c>q4_0</c>: quantize the model's F32/F16/BF16 matrices while loading (<c>--quantize</c>);
    /// empty or <c>none</c> serves them as stored. Applies to models the admin API loads too.
    /// </summary>
    public string? Quantize { get; set; }

    /// <summary>The parsed <see cref="Quantize"/> (null: none); only valid after <see cref="Validate"/>.</summary>
    public Bulwark.Engine.Formats.GgmlType? QuantizeType => Bulwark.Engine.Model.Loading.LoadQuantization.TryParse(Quantize, out var type) ? type : null;

    /// <summary>Registered models must carry a valid signature from a trusted key.</summary>
    public bool RequireSignature { get; set; }

    /// <summary>Memory for the KV cache, in bytes or with a unit: <c>512MiB</c>, <c>2GiB</c>, <c>300MB</c>.</summary>
    public string KvCacheMemory { get; set; } = "512MiB";

    /// <summary>How the KV cache stores keys and values: <c>f32</c> (default) or <c>f16</c> (half the memory per token, as llama.cpp stores it).</summary>
    public string KvCacheDtype { get; set; } = "f32";

    /// <summary>The parsed <see cref="KvCacheDtype"/>; only valid after <see cref="Validate"/>.</summary>
    public Bulwark.Engine.KvCache.KvCacheType KvCacheType =>
        Bulwark.Engine.KvCache.KvCacheTypeNames.TryParse(KvCacheDtype, out var type) ? type : Bulwark.Engine.KvCache.KvCacheType.F32;

    /// <summary>
    /// Memory all loaded models may hold together (weights as on disk + each model's KV cache), as a
    /// size like <c>16GiB</c>; empty means no limit. A load through the admin API that would pass it is
    /// refused. A model being replaced counts until its last request ends.
    /// </summary>
    public string? ModelMemoryBudget { get; set; }

    /// <summary>The budget in bytes; null when there is none.</summary>
    public long? ModelMemoryBudgetBytes => string.IsNullOrWhiteSpace(ModelMemoryBudget) ? null : ParseBytes(ModelMemoryBudget);

    /// <summary>
    /// Per served model id, how it writes tool calls: <c>hermes</c> (alias <c>qwen</c>), <c>llama3</c>, <c>mistral</c> or
    /// <c>none</c>. A model not listed gets the format its chat template shows (<see cref="Bulwark.Engine.Tools.ToolCallFormats.Detect"/>).
    /// </summary>
    public Dictionary<string, string> ToolCallFormats { get; set; } = new(StringComparer.Ordinal);

    /// <summary>The configured tool-call format of <paramref name="modelId"/>; null: detect it from the chat template.</summary>
    public Bulwark.Engine.Tools.ToolCallFormat? ToolCallFormatOf(string modelId) =>
        ToolCallFormats.TryGetValue(modelId, out var name) && Bulwark.Engine.Tools.ToolCallFormats.TryParse(name, out var format) ? format : null;

    public int MaxBatchedTokens { get; set; } = new SchedulerOptions().MaxBatchedTokens;

    public int MaxSequences { get; set; } = new SchedulerOptions().MaxSequences;

    /// <summary>Prefill tokens a step may carry while streams are decoding (protects their inter-token latency).</summary>
    public int MaxPrefillTokensWhileDecoding { get; set; } = new SchedulerOptions().MaxPrefillTokensWhileDecoding;

    /// <summary>
    /// How served models pool for <c>/v1/embeddings</c>: <c>model</c> (default: as the file declares; a generator then
    /// refuses embeddings), <c>none</c> (refuse), or <c>mean</c>, <c>cls</c>, <c>last</c> (embed with this pooling, any decoder,
    /// as llama.cpp's <c>--embeddings --pooling</c> does).
    /// </summary>
    public string EmbeddingPooling { get; set; } = "model";

    /// <summary>0: <c>dimensions</c> must equal the model's width; N: the model was trained Matryoshka-style and may be cut to N..width values.</summary>
    public int EmbeddingMatryoshkaMinDimensions { get; set; }

    /// <summary>The parsed embedding settings; only valid after <see cref="Validate"/>.</summary>
    public Bulwark.Server.Backends.Embedded.EmbeddingSettings Embeddings => new()
    {
        Pooling = string.Equals(EmbeddingPooling?.Trim(), "model", StringComparison.OrdinalIgnoreCase) || string.IsNullOrWhiteSpace(EmbeddingPooling)
            ? null
            : Bulwark.Engine.Model.Config.PoolingTypeNames.TryParse(EmbeddingPooling, out var p) ? p : null,
        MatryoshkaMinDimensions = EmbeddingMatryoshkaMinDimensions,
    };

    /// <summary>Speculative decoding for requests that do not choose (<c>Bulwark:Serve:Speculative:*</c>).</summary>
    public SpeculativeOptions Speculative { get; set; } = new();

    public const long MinKvCacheMemory = 1L << 20;
    public const long MaxKvCacheMemory = 1L << 40;

    public long KvCacheMemoryBytes => ParseBytes(KvCacheMemory) ?? -1;

    public IEnumerable<string> Validate()
    {
        if (Model is { Length: > 4096 }) yield return $"{Section}:Model must be at most 4096 characters; got {Model.Length}.";
        foreach (var (model, format) in ToolCallFormats)
            if (!Bulwark.Engine.Tools.ToolCallFormats.TryParse(format, out _))
                yield return $"{Section}:ToolCallFormats:{model} must be one of {string.Join(", ", Bulwark.Engine.Tools.ToolCallFormats.Names)}; got '{format}'.";
        if (!Bulwark.Engine.Model.Loading.LoadQuantization.TryParse(Quantize, out _))
            yield return $"{Section}:Quantize must be {Bulwark.Engine.Model.Loading.LoadQuantization.Allowed}; got '{Quantize}'.";
        if (!Bulwark.Engine.KvCache.KvCacheTypeNames.TryParse(KvCacheDtype, out _))
            yield return $"{Section}:KvCacheDtype must be f32 or f16; got '{KvCacheDtype}'.";
        var bytes = ParseBytes(KvCacheMemory);
        if (bytes is null)
            yield return $"{Section}:KvCacheMemory must be a size such as 512MiB, 2GiB or 1073741824; got '{KvCacheMemory}'.";
        else if (bytes is < MinKvCacheMemory or > MaxKvCacheMemory)
            yield return $"{Section}:KvCacheMemory must be between 1MiB and 1TiB; got '{KvCacheMemory}' ({bytes} bytes).";
        if (!string.IsNullOrWhiteSpace(ModelMemoryBudget) && ParseBytes(ModelMemoryBudget) is not > 0)
            yield return $"{Section}:ModelMemoryBudget must be a size such as 16GiB or 8000MB (or empty for no limit); got '{ModelMemoryBudget}'.";
        if (MaxBatchedTokens is < 1 or > 1_048_576)
            yield return $"{Section}:MaxBatchedTokens must be between 1 and 1048576; got {MaxBatchedTokens}.";
        if (MaxSequences is < 1 or > 4096)
            yield return $"{Section}:MaxSequences must be between 1 and 4096; got {MaxSequences}.";
        if (!string.Equals(EmbeddingPooling?.Trim(), "model", StringComparison.OrdinalIgnoreCase) && !string.IsNullOrWhiteSpace(EmbeddingPooling)
            && !Bulwark.Engine.Model.Config.PoolingTypeNames.TryParse(EmbeddingPooling, out _))
            yield return $"{Section}:EmbeddingPooling must be model, {Bulwark.Engine.Model.Config.PoolingTypeNames.Allowed}; got '{EmbeddingPooling}'.";
        if (EmbeddingMatryoshkaMinDimensions is < 0 or > Bulwark.Engine.Model.Config.LlamaConfig.MaxDimension)
            yield return $"{Section}:EmbeddingMatryoshkaMinDimensions must be between 0 and {Bulwark.Engine.Model.Config.LlamaConfig.MaxDimension}; got {EmbeddingMatryoshkaMinDimensions}.";
        if (MaxPrefillTokensWhileDecoding is < 1 or > 1_048_576)
            yield return $"{Section}:MaxPrefillTokensWhileDecoding must be between 1 and 1048576; got {MaxPrefillTokensWhileDecoding}.";
        foreach (var problem in Speculative.Validate())
            yield return problem;
    }

    /// <summary>Engine options for a model whose end-of-sequence tokens are <paramref name="eosTokenIds"/>.</summary>
    public EngineOptions ToEngineOptions(IReadOnlyList<int> eosTokenIds) => new()
    {
        KvCacheMemoryBytes = KvCacheMemoryBytes,
        KvCacheType = KvCacheType,
        Scheduler = new SchedulerOptions
        {
            MaxBatchedTokens = MaxBatchedTokens,
            MaxSequences = MaxSequences,
            MaxPrefillChunk = Math.Min(MaxBatchedTokens, new SchedulerOptions().MaxPrefillChunk),
            MaxPrefillTokensWhileDecoding = MaxPrefillTokensWhileDecoding,
        },
        EosTokenIds = eosTokenIds,
        Speculative = Speculative.ToConfig(),
    };

    /// <summary>
    /// Engine options for a model loaded with a draft model (<paramref name="withDraftModel"/>): the draft's KV budget; without
    /// one, a <c>draft_model</c> default falls back to none (models loaded later, through the admin API, have no draft).
    /// </summary>
    public EngineOptions ToEngineOptions(IReadOnlyList<int> eosTokenIds, bool withDraftModel)
    {
        var options = ToEngineOptions(eosTokenIds);
        return withDraftModel
            ? options
            : options with { Speculative = options.Speculative is { Method: Bulwark.Engine.Serving.Speculation.SpeculativeMethod.DraftModel } ? null : options.Speculative };
    }

    /// <summary>Bytes of "123", "512KiB", "512MiB", "2GiB", "1TiB" or "300KB"/"300MB"/"2GB" (powers of 1000); null when malformed.</summary>
    public static long? ParseBytes(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        var t = text.Trim();
        var split = t.Length;
        while (split > 0 && char.IsLetter(t[split - 1])) split--;
        long multiplier = t[split..].ToUpperInvariant() switch
        {
            "" or "B" => 1,
            "KIB" => 1L << 10, "MIB" => 1L << 20, "GIB" => 1L << 30, "TIB" => 1L << 40,
            "KB" => 1_000, "MB" => 1_000_000, "GB" => 1_000_000_000, "TB" => 1_000_000_000_000,
            _ => 0,
        };
        if (multiplier == 0 || !decimal.TryParse(t[..split].Trim(), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number)) return null;
        var bytes = number * multiplier;
        return bytes > long.MaxValue ? null : (long)bytes;
    }
}
