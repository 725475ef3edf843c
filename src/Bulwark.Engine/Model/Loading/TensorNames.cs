namespace Bulwark.Engine.Model.Loading;

/// <summary>How one file format names a decoder's tensors.</summary>
public sealed record TensorNames(
    string TokenEmbedding,
    string OutputNorm,
    string Output,
    Func<int, string, string> Layer)
{
    /// <summary>Added to every norm weight as it is loaded: 1 for Hugging Face Gemma, which stores w and applies 1 + w (GGUF files hold 1 + w).</summary>
    public float NormWeightOffset { get; init; }

    /// <summary>Per-layer parts, in the vocabulary of the GGUF names.</summary>
    public const string AttentionNorm = "attn_norm.weight", Query = "attn_q.weight", Key = "attn_k.weight",
        Value = "attn_v.weight", AttentionOutput = "attn_output.weight", QueryBias = "attn_q.bias",
        KeyBias = "attn_k.bias", ValueBias = "attn_v.bias", QueryNorm = "attn_q_norm.weight",
        KeyNorm = "attn_k_norm.weight", FeedForwardNorm = "ffn_norm.weight", Gate = "ffn_gate.weight",
        Up = "ffn_up.weight", Down = "ffn_down.weight", PostAttentionNorm = "post_attention_norm.weight",
        PostFeedForwardNorm = "post_ffw_norm.weight";

    /// <summary>
    /// Phi-3's fused matrices: q, k and v rows one after another (GGUF <c>attn_qkv</c>), and gate then up rows
    /// (a logical name: GGUF calls the fused matrix <c>ffn_up</c>, Hugging Face <c>gate_up_proj</c>).
    /// </summary>
    public const string QueryKeyValue = "attn_qkv.weight", GateUp = "ffn_gate_up.weight";

    /// <summary>A mixture of experts: the router, and every expert's gate/up/down merged into one 3-D tensor each (GGUF's layout).</summary>
    public const string Router = "ffn_gate_inp.weight", GateExperts = "ffn_gate_exps.weight", UpExperts = "ffn_up_exps.weight",
        DownExperts = "ffn_down_exps.weight";

    /// <summary>
    /// Where a format stores each expert apart (Hugging Face): expert e's <see cref="Gate"/>, <see cref="Up"/> or
    /// <see cref="Down"/> of a layer. Null when the experts are merged (<see cref="GateExperts"/> ...).
    /// </summary>
    public Func<int, int, string, string>? Expert { get; init; }

    public static readonly TensorNames Gguf = new("token_embd.weight", "output_norm.weight", "output.weight",
        (layer, part) => $"blk.{layer}.{(part == GateUp ? Up : part)}");

    public static readonly TensorNames HuggingFace = new("model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
        (layer, part) => $"model.layers.{layer}." + part switch
        {
            AttentionNorm => "input_layernorm.weight",
            Query => "self_attn.q_proj.weight",
            Key => "self_attn.k_proj.weight",
            Value => "self_attn.v_proj.weight",
            AttentionOutput => "self_attn.o_proj.weight",
            QueryBias => "self_attn.q_proj.bias",
            KeyBias => "self_attn.k_proj.bias",
            ValueBias => "self_attn.v_proj.bias",
            QueryNorm => "self_attn.q_norm.weight",
            KeyNorm => "self_attn.k_norm.weight",
            FeedForwardNorm => "post_attention_layernorm.weight",
            Gate => "mlp.gate_proj.weight",
            Up => "mlp.up_proj.weight",
            Down => "mlp.down_proj.weight",
            QueryKeyValue => "self_attn.qkv_proj.weight",
            GateUp => "mlp.gate_up_proj.weight",
            _ => throw new ArgumentOutOfRangeException(nameof(part), part, "unknown layer tensor"),
        });

    /// <summary>
    /// Gemma 2/3 in transformers: four norms per layer, and "post_attention_layernorm" is the norm of the attention
    /// output (Llama's name for the MLP's input norm, which Gemma calls pre_feedforward_layernorm).
    /// </summary>
    public static readonly TensorNames HuggingFaceGemma = new(HuggingFace.TokenEmbedding, HuggingFace.OutputNorm, HuggingFace.Output,
        (layer, part) => part switch
        {
            FeedForwardNorm => $"model.layers.{layer}.pre_feedforward_layernorm.weight",
            PostAttentionNorm => $"model.layers.{layer}.post_attention_layernorm.weight",
            PostFeedForwardNorm => $"model.layers.{layer}.post_feedforward_layernorm.weight",
            _ => HuggingFace.Layer(layer, part),
        })
    {
        NormWeightOffset = 1f,
    };

    /// <summary>Mixtral in transformers: <c>block_sparse_moe.gate</c> routes to <c>experts.E.w1</c> (gate), <c>w3</c> (up), <c>w2</c> (down).</summary>
    public static readonly TensorNames HuggingFaceMixtral = HuggingFaceExperts("block_sparse_moe", "w1", "w3", "w2");

    /// <summary>Qwen3-MoE in transformers: <c>mlp.gate</c> routes to <c>mlp.experts.E.gate_proj/up_proj/down_proj</c>.</summary>
    public static readonly TensorNames HuggingFaceQwen3Moe = HuggingFaceExperts("mlp", "gate_proj", "up_proj", "down_proj");

    /// <summary>Llama's names with a router <c>{block}.gate</c> and each expert's matrices <c>{block}.experts.E.{gate|up|down}</c>.</summary>
    private static TensorNames HuggingFaceExperts(string block, string gate, string up, string down) =>
        new(HuggingFace.TokenEmbedding, HuggingFace.OutputNorm, HuggingFace.Output,
            (layer, part) => part == Router ? $"model.layers.{layer}.{block}.gate.weight" : HuggingFace.Layer(layer, part))
        {
            Expert = (layer, expert, part) => $"model.layers.{layer}.{block}.experts.{expert}." + part switch
            {
                Gate => gate,
                Up => up,
                Down => down,
                _ => throw new ArgumentOutOfRangeException(nameof(part), part, "unknown expert tensor"),
            } + ".weight",
        };

    /// <summary>The names a Hugging Face checkpoint of <paramref name="config"/>'s architecture uses.</summary>
    public static TensorNames HuggingFaceFor(Config.LlamaConfig config) => config.Architecture switch
    {
        Config.ModelArchitecture.Mixtral => HuggingFaceMixtral,
        Config.ModelArchitecture.Qwen3Moe => HuggingFaceQwen3Moe,
        _ => config.Gemma is null ? HuggingFace : HuggingFaceGemma,
    };
}
