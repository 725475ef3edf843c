namespace Bulwark.Engine.Model.Config;

/// <summary>The Llama-family variants the decoder runs; they differ only in a few switches of <see cref="LlamaConfig"/>.</summary>
public enum ModelArchitecture
{
    /// <summary>Llama 2/3, TinyLlama, SmolLM (and Mistral, which GGUF files label "llama").</summary>
    Llama,
    Mistral,
    /// <summary>Adds biases to the q/k/v projections.</summary>
    Qwen2,
    /// <summary>Adds RMSNorm over each q and k head before RoPE.</summary>
    Qwen3,
    /// <summary>Llama with no RoPE in every fourth layer (<see cref="LlamaConfig.NoRopeLayerStep"/>).</summary>
    SmolLM3,
    /// <summary>Phi-3/3.5: q/k/v in one matrix and gate/up in one (split as views of the file), LongRoPE scaling.</summary>
    Phi3,
    /// <summary>Gemma 2: GeGLU, pre and post norms, soft-capped attention and logits, every other layer windowed.</summary>
    Gemma2,
    /// <summary>Gemma 3 (text): Gemma 2's block with Qwen3's q/k norm, five local layers to one global, no soft-capping.</summary>
    Gemma3,
    /// <summary>Mixtral: Mistral's block with a mixture of SwiGLU experts for the MLP (GGUF files label it "llama").</summary>
    Mixtral,
    /// <summary>Qwen3-MoE: Qwen3's block (q/k norms) with a mixture of SwiGLU experts for the MLP.</summary>
    Qwen3Moe,
}
