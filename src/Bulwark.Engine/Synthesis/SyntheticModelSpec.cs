using Bulwark.Engine.Formats;

namespace Bulwark.Engine.Synthesis;

/// <summary>
/// The shape of a synthetic model: a decoder with seeded random weights and a byte-level BPE
/// vocabulary cut from GPT-2's, for tests, benchmarks and the demo. The same spec always gives
/// the same bytes.
/// </summary>
public sealed record SyntheticModelSpec
{
    /// <summary>llama (Mixtral with <see cref="Experts"/>), qwen2 (q/k/v biases), qwen3 (q/k RMSNorm), smollm3 (no RoPE in every fourth layer), phi3 (fused q/k/v and gate/up), gemma2 or gemma3 (see <see cref="SlidingWindow"/>), qwen3moe (qwen3 with experts).</summary>
    public string Architecture { get; init; } = "llama";
    public int Layers { get; init; } = 2;
    public int Dim { get; init; } = 64;
    public int Heads { get; init; } = 4;
    public int KvHeads { get; init; } = 2;
    public int FeedForward { get; init; } = 128;
    /// <summary>Vocabulary size, specials included (at least <see cref="SyntheticVocabulary.MinimumSize"/>).</summary>
    public int Vocab { get; init; } = 512;
    public int Context { get; init; } = 256;
    /// <summary>Type of the 2-D weights; norms and biases stay F32 as llama.cpp's converter keeps them.</summary>
    public GgmlType DType { get; init; } = GgmlType.F32;
    public ulong Seed { get; init; }
    /// <summary>No separate output head: logits come from the token embedding.</summary>
    public bool TiedOutput { get; init; }
    /// <summary>A Jinja chat template written as <c>tokenizer.chat_template</c>, or none.</summary>
    public string? ChatTemplate { get; init; }
    public float RopeTheta { get; init; } = 10000f;
    public float RmsNormEpsilon { get; init; } = 1e-5f;
    /// <summary>
    /// RoPE scaling: linear (Gemma 3 scales its global layers only), Llama 3's (GGUF: the <c>rope_freqs.weight</c> factors llama.cpp's converter writes;
    /// Hugging Face: config.json's <c>rope_scaling</c>) or, for phi3, LongRoPE (<see cref="SyntheticRope.LongRope"/>;
    /// its attention factor is derived from the context as transformers derives it).
    /// </summary>
    public Model.Config.RopeScaling RopeScaling { get; init; } = Model.Config.RopeScaling.None;
    /// <summary>An embedding model's pooling (GGUF <c>{arch}.pooling_type</c>, sentence-transformers' <c>1_Pooling/config.json</c>); None: a generator.</summary>
    public Model.Config.PoolingType Pooling { get; init; }

    /// <summary>Gemma's sliding window (null: 8, small so short prompts cross it); other architectures have none.</summary>
    public int? SlidingWindow { get; init; }

    /// <summary>Gemma 2's attention-score and logit soft caps (null: its defaults 50 and 30).</summary>
    public float? AttentionSoftCap { get; init; }
    public float? FinalSoftCap { get; init; }

    /// <summary>
    /// A mixture of experts: llama with experts is Mixtral (GGUF arch llama, Hugging Face MixtralForCausalLM);
    /// qwen3moe always has them. Each expert is <see cref="FeedForward"/> wide. Null: 4 for qwen3moe, none otherwise.
    /// </summary>
    public int? Experts { get; init; }

    /// <summary>Experts each token runs (null: 2, or 1 with a single expert).</summary>
    public int? ExpertsUsed { get; init; }

    public int ExpertCount => Experts ?? (Architecture == "qwen3moe" ? 4 : 0);

    public int ExpertsUsedCount => ExpertCount == 0 ? 0 : ExpertsUsed ?? Math.Min(2, ExpertCount);

    public bool IsMixtureOfExperts => ExpertCount > 0;

    public bool IsGemma => Architecture is "gemma2" or "gemma3";

    public int Window => IsGemma ? SlidingWindow ?? 8 : 0;

    /// <summary>Whether the file has an output head: not when tied, nor for Gemma 2, which llama.cpp always ties.</summary>
    public bool HasOutputHead => !TiedOutput && Architecture != "gemma2";

    public int HeadDim => Dim / Heads;

    public const int MaxDimension = 1 << 16;

    public static readonly IReadOnlyList<string> Architectures = ["llama", "qwen2", "qwen3", "smollm3", "phi3", "gemma2", "gemma3", "qwen3moe"];

    /// <summary>Whether llama.cpp's converter permutes this architecture's q/k rows into adjacent RoPE pairs (the GGUF layout the generator writes).</summary>
    public bool PermutesQueryKeyRows => Architecture is "llama" or "smollm3";

    public static readonly IReadOnlyList<GgmlType> DTypes = [GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0];

    /// <summary>Checks every field, naming it, its value and what is allowed.</summary>
    public void Validate()
    {
        if (!Architectures.Contains(Architecture))
            throw new ArgumentException($"architecture must be one of {string.Join(", ", Architectures)}; got \"{Architecture}\"");
        Range("layers", Layers, 1, 256);
        Range("dim", Dim, 2, MaxDimension);
        Range("heads", Heads, 1, 1024);
        Range("kv-heads", KvHeads, 1, Heads);
        Range("ff", FeedForward, 1, MaxDimension * 4);
        Range("vocab", Vocab, SyntheticVocabulary.MinimumSize, SyntheticVocabulary.MaximumSize);
        Range("ctx", Context, 1, 1 << 20);
        if (Dim % Heads != 0) throw new ArgumentException($"dim must be a multiple of heads ({Heads}); got {Dim}");
        if (HeadDim % 2 != 0) throw new ArgumentException($"dim / heads (the head dim) must be even for RoPE; got {HeadDim}");
        if (Heads % KvHeads != 0) throw new ArgumentException($"kv-heads must divide heads ({Heads}); got {KvHeads}");
        if (!DTypes.Contains(DType))
            throw new ArgumentException($"dtype must be one of {string.Join(", ", DTypes)}; got {DType}");
        var block = GgmlTypes.BlockSize(DType);
        if (Dim % block != 0) throw new ArgumentException($"dim must be a multiple of {block} for {DType}; got {Dim}");
        if (FeedForward % block != 0) throw new ArgumentException($"ff must be a multiple of {block} for {DType}; got {FeedForward}");
        if (!(RopeTheta > 1 && float.IsFinite(RopeTheta))) throw new ArgumentException($"rope theta must be a finite number above 1; got {RopeTheta}");
        if (!Enum.IsDefined(Pooling)) throw new ArgumentException($"pooling must be none, mean, cls or last; got {Pooling}");
        ValidateRopeScaling();
        if (!(RmsNormEpsilon > 0 && RmsNormEpsilon < 1)) throw new ArgumentException($"rms norm epsilon must be in (0, 1); got {RmsNormEpsilon}");
        if (!IsGemma && SlidingWindow is not null) throw new ArgumentException($"sliding window is for gemma2 and gemma3; got {SlidingWindow} for {Architecture}");
        if (SlidingWindow is { } w) Range("sliding-window", w, 1, 1 << 20);
        if (Architecture != "gemma2" && (AttentionSoftCap is not null || FinalSoftCap is not null))
            throw new ArgumentException($"soft caps are for gemma2; got them for {Architecture}");
        foreach (var cap in new[] { AttentionSoftCap, FinalSoftCap })
            if (cap is { } c && !(c > 0 && c <= 1e6f)) throw new ArgumentException($"a soft cap must be above 0 and at most 1e6; got {c}");
        ValidateExperts();
    }

    private void ValidateExperts()
    {
        if (Experts is not null && Architecture is not ("llama" or "qwen3moe"))
            throw new ArgumentException($"experts are for llama (Mixtral) and qwen3moe; got {Experts} for {Architecture}");
        if (Experts is { } count) Range("experts", count, Architecture == "qwen3moe" ? 1 : 0, Model.Config.LlamaConfig.MaxExperts);
        if (ExpertsUsed is { } used)
        {
            if (ExpertCount == 0) throw new ArgumentException($"experts-used needs experts; got {used} with none");
            Range("experts-used", used, 1, ExpertCount);
        }
    }

    private void ValidateRopeScaling()
    {
        var r = RopeScaling;
        switch (r.Kind)
        {
            case Model.Config.RopeScalingKind.None:
                return;
            case Model.Config.RopeScalingKind.Linear or Model.Config.RopeScalingKind.Llama3:
                if (!(r.Factor > 0 && float.IsFinite(r.Factor))) throw new ArgumentException($"rope factor must be a finite number above 0; got {r.Factor}");
                if (r.Kind == Model.Config.RopeScalingKind.Linear) return;
                if (!(r.LowFrequencyFactor > 0 && r.HighFrequencyFactor > r.LowFrequencyFactor && float.IsFinite(r.HighFrequencyFactor)))
                    throw new ArgumentException($"llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor; got {r.LowFrequencyFactor} and {r.HighFrequencyFactor}");
                Range("rope original ctx", r.OriginalContextLength, 1, 1 << 24);
                return;
            case Model.Config.RopeScalingKind.LongRope:
                if (Architecture != "phi3") throw new ArgumentException($"longrope scaling is Phi-3's: it needs architecture phi3; got {Architecture}");
                Range("rope original ctx", r.OriginalContextLength, 1, 1 << 24);
                foreach (var factors in new[] { r.ShortFactors, r.LongFactors })
                    if (factors is null || factors.Values.Length != HeadDim / 2 || factors.Values.Any(f => !(f > 0 && float.IsFinite(f))))
                        throw new ArgumentException($"longrope scaling needs short and long factors: {HeadDim / 2} finite numbers above 0 each");
                return;
            default:
                throw new ArgumentException($"rope scaling must be none, linear, llama3 or longrope; got {r.Kind}");
        }
    }

    private static void Range(string name, int value, int min, int max)
    {
        if (value < min || value > max)
            throw new ArgumentException($"{name} must be between {min} and {max}; got {value}");
    }
}
