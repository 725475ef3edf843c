using Bulwark.Engine.Kernels.Reference;

namespace Bulwark.Engine.Model.Config;

/// <summary>The shape and switches of a Llama-family decoder, whatever file format it came from.</summary>
public sealed record LlamaConfig
{
    public required ModelArchitecture Architecture { get; init; }
    public required int EmbeddingLength { get; init; }
    public required int LayerCount { get; init; }
    public required int HeadCount { get; init; }
    public required int KeyValueHeadCount { get; init; }
    public required int HeadDim { get; init; }
    public required int FeedForwardLength { get; init; }
    public required int VocabularySize { get; init; }
    public required int ContextLength { get; init; }
    public float RmsNormEpsilon { get; init; } = 1e-5f;
    public float RopeTheta { get; init; } = 10000f;
    public RopeScaling RopeScaling { get; init; } = RopeScaling.None;

    /// <summary>Which pairs RoPE rotates; depends on the architecture and on the file format (see the loaders).</summary>
    public required RopeLayout RopeLayout { get; init; }

    public bool TiedOutputHead { get; init; }

    /// <summary>
    /// SmolLM3's NoPE layers: layer l (from 0) applies no RoPE when (l + 1) is a multiple of this step
    /// (transformers' <c>no_rope_layer_interval</c>; llama.cpp's <c>n_no_rope_layer_step</c>, fixed at 4). 0: every layer rotates.
    /// </summary>
    public int NoRopeLayerStep { get; init; }

    public bool UsesRope(int layer) => NoRopeLayerStep == 0 || (layer + 1) % NoRopeLayerStep != 0;
    public bool HasQkvBias { get; init; }
    public bool HasQkNorm { get; init; }

    /// <summary>How the file says to pool hidden states into an embedding (<see cref="PoolingType.None"/>: it is a generator).</summary>
    public PoolingType Pooling { get; init; }

    /// <summary>
    /// Sliding-window attention: a windowed layer's query at position p sees positions p − W + 1 … p
    /// (W positions, its own included: llama.cpp's <c>is_masked_swa</c> masks p − p0 ≥ W, transformers'
    /// mask keeps p0 &gt; p − W). 0: every layer sees every earlier position.
    /// </summary>
    public int SlidingWindow { get; init; }

    /// <summary>
    /// Which layers the window applies to, as llama.cpp's <c>set_swa_pattern(n)</c>: layer l is windowed when
    /// l mod n &lt; n − 1, so 1 windows every layer (Mistral v0.1), 2 every even layer (Gemma 2), 6 five of six (Gemma 3).
    /// </summary>
    public int SlidingWindowPattern { get; init; } = 1;

    /// <summary>
    /// Layers below this one are global whatever the pattern says: Qwen's <c>max_window_layers</c> (transformers windows
    /// layer l when <c>use_sliding_window</c> and l ≥ max_window_layers). 0: the pattern alone decides.
    /// </summary>
    public int FirstWindowedLayer { get; init; }

    /// <summary>The window of layer <paramref name="layer"/>; 0 for a global layer.</summary>
    public int WindowOf(int layer) =>
        SlidingWindow > 0 && layer >= FirstWindowedLayer && (SlidingWindowPattern <= 1 || layer % SlidingWindowPattern < SlidingWindowPattern - 1) ? SlidingWindow : 0;

    /// <summary>Whether every layer is windowed, so KV of positions before the window is never read again.</summary>
    public bool EveryLayerWindowed => SlidingWindow > 0 && SlidingWindowPattern <= 1 && FirstWindowedLayer == 0;

    /// <summary>
    /// Mixture of experts (Mixtral, Qwen3-MoE): every layer's MLP is <see cref="ExpertCount"/> SwiGLU experts of width
    /// <see cref="ExpertFeedForwardLength"/> and a router; each token runs the <see cref="ExpertsUsed"/> with the highest
    /// softmax probability and sums their outputs weighted by those probabilities (renormalised among the chosen when
    /// <see cref="NormalizeExpertWeights"/>). 0: a dense MLP of <see cref="FeedForwardLength"/>.
    /// </summary>
    public int ExpertCount { get; init; }
    public int ExpertsUsed { get; init; }
    public int ExpertFeedForwardLength { get; init; }
    public bool NormalizeExpertWeights { get; init; } = true;

    public bool IsMixtureOfExperts => ExpertCount > 0;

    /// <summary>Most experts a layer may have (llama.cpp's LLAMA_MAX_EXPERTS is 512 in recent versions, 256 in older).</summary>
    public const int MaxExperts = 512;

    /// <summary>A Hugging Face AWQ/GPTQ checkpoint's packed 4-bit layout; null for every other file.</summary>
    public Int4Checkpoint? Int4 { get; init; }

    /// <summary>Gemma's extras (<see cref="GemmaConfig"/>); null for every other architecture.</summary>
    public GemmaConfig? Gemma { get; init; }

    public int QueryLength => HeadCount * HeadDim;
    public int KeyValueLength => KeyValueHeadCount * HeadDim;

    /// <summary>Largest value any dimension may take: keeps a hostile file from sizing buffers.</summary>
    public const int MaxDimension = 1 << 20;

    /// <summary>Checks every field, naming it, its value and the limit.</summary>
    public void Validate(string source)
    {
        void Range(string field, long value, long min, long max)
        {
            if (value < min || value > max)
                throw new Formats.ModelFormatException(source, field, $"must be between {min} and {max}; got {value}");
        }
        Range("embedding_length", EmbeddingLength, 1, MaxDimension);
        Range("block_count", LayerCount, 1, 4096);
        Range("head_count", HeadCount, 1, 4096);
        Range("head_count_kv", KeyValueHeadCount, 1, HeadCount);
        Range("head_dim", HeadDim, 2, 4096);
        Range("feed_forward_length", FeedForwardLength, 1, MaxDimension * 4L);
        Range("vocab_size", VocabularySize, 1, 1 << 24);
        Range("context_length", ContextLength, 1, 1 << 24);
        if (HeadCount % KeyValueHeadCount != 0)
            throw new Formats.ModelFormatException(source, "head_count_kv", $"must divide head_count {HeadCount}; got {KeyValueHeadCount}");
        if (HeadDim % 2 != 0)
            throw new Formats.ModelFormatException(source, "head_dim", $"must be even for RoPE; got {HeadDim}");
        if (!(RmsNormEpsilon > 0 && RmsNormEpsilon < 1))
            throw new Formats.ModelFormatException(source, "rms_norm_eps", $"must be in (0, 1); got {RmsNormEpsilon}");
        if (!(RopeTheta > 1 && float.IsFinite(RopeTheta)))
            throw new Formats.ModelFormatException(source, "rope_theta", $"must be a finite number above 1; got {RopeTheta}");
        Range("sliding_window", SlidingWindow, 0, 1 << 24);
        Range("sliding_window_pattern", SlidingWindowPattern, 1, 4096);
        Range("max_window_layers", FirstWindowedLayer, 0, LayerCount);
        Gemma?.Validate(source);
        ValidateExperts(source);
    }

    private void ValidateExperts(string source)
    {
        if (ExpertCount == 0)
        {
            if (Architecture == ModelArchitecture.Qwen3Moe)
                throw new Formats.ModelFormatException(source, "expert_count", "must be at least 1 for a mixture-of-experts architecture; got 0");
            if (ExpertsUsed != 0)
                throw new Formats.ModelFormatException(source, "expert_used_count", $"is {ExpertsUsed} but expert_count is 0 (a dense model uses no experts)");
            return;
        }
        if (ExpertCount < 1 || ExpertCount > MaxExperts)
            throw new Formats.ModelFormatException(source, "expert_count", $"must be between 1 and {MaxExperts}; got {ExpertCount}");
        if (ExpertsUsed < 1 || ExpertsUsed > ExpertCount)
            throw new Formats.ModelFormatException(source, "expert_used_count", $"must be between 1 and expert_count {ExpertCount}; got {ExpertsUsed}");
        if (ExpertFeedForwardLength < 1 || ExpertFeedForwardLength > MaxDimension * 4L)
            throw new Formats.ModelFormatException(source, "expert_feed_forward_length", $"must be between 1 and {MaxDimension * 4L}; got {ExpertFeedForwardLength}");
        if (Gemma is not null || Architecture == ModelArchitecture.Phi3)
            throw new Formats.ModelFormatException(source, "expert_count", $"experts are not supported for {Architecture} (supported: llama/Mixtral, Qwen3-MoE)");
    }
}
