using Bulwark.Engine.Formats;

namespace Bulwark.Engine.Model.Config;

/// <summary>
/// What Gemma 2 and Gemma 3 add to the Llama block: embeddings scaled by √dim, a GeGLU MLP (GELU, tanh
/// approximation), RMSNorm after attention and after the MLP as well as before, queries scaled by
/// <see cref="AttentionScale"/>, logit soft-capping (Gemma 2: cap·tanh(x / cap) on attention scores and on
/// the output logits) and, for Gemma 3, RoPE of base <see cref="LocalRopeTheta"/> without scaling on the
/// windowed (local) layers. Norm weights are the multipliers themselves: Hugging Face stores w and applies
/// 1 + w, llama.cpp's converter writes 1 + w, and the Hugging Face loader adds the 1.
/// </summary>
public sealed record GemmaConfig
{
    /// <summary>The embedding row is multiplied by this (√dim, rounded to float as both llama.cpp and transformers do).</summary>
    public required float EmbeddingScale { get; init; }

    /// <summary>What the query is multiplied by before q·k (transformers: query_pre_attn_scalar^−½; llama.cpp: head_dim^−½ except for the 27B shapes).</summary>
    public required float AttentionScale { get; init; }

    /// <summary>cap·tanh(score / cap) on every attention score before the softmax; 0: none (Gemma 3).</summary>
    public float AttentionLogitSoftCap { get; init; }

    /// <summary>cap·tanh(logit / cap) on the output logits; 0: none.</summary>
    public float FinalLogitSoftCap { get; init; }

    /// <summary>RoPE base of the windowed layers (Gemma 3: 10 000, unscaled); 0: the same RoPE as the global layers (Gemma 2).</summary>
    public float LocalRopeTheta { get; init; }

    public void Validate(string source)
    {
        void Positive(string field, float value, bool zeroAllowed)
        {
            if (!float.IsFinite(value) || value < 0 || (!zeroAllowed && value == 0) || value > 1e9f)
                throw new ModelFormatException(source, field, $"must be a finite number {(zeroAllowed ? "of at least 0" : "above 0")} and at most 1e9; got {value}");
        }
        Positive("embedding_scale", EmbeddingScale, zeroAllowed: false);
        Positive("attention_scale", AttentionScale, zeroAllowed: false);
        Positive("attn_logit_softcapping", AttentionLogitSoftCap, zeroAllowed: true);
        Positive("final_logit_softcapping", FinalLogitSoftCap, zeroAllowed: true);
        if (LocalRopeTheta != 0 && !(LocalRopeTheta > 1 && float.IsFinite(LocalRopeTheta)))
            throw new ModelFormatException(source, "rope_local_base_freq", $"must be a finite number above 1; got {LocalRopeTheta}");
    }
}
