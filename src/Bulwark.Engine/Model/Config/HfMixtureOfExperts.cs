using System.Text.Json;

namespace Bulwark.Engine.Model.Config;

/// <summary>
/// The mixture-of-experts keys of a Hugging Face config.json: Mixtral's <c>num_local_experts</c> and
/// <c>num_experts_per_tok</c> (experts <c>intermediate_size</c> wide, weights always renormalised among the
/// chosen), Qwen3-MoE's <c>num_experts</c>, <c>num_experts_per_tok</c>, <c>moe_intermediate_size</c> and
/// <c>norm_topk_prob</c> (transformers' default: false). Qwen3-MoE layers with a dense MLP
/// (<c>decoder_sparse_step</c> above 1, <c>mlp_only_layers</c>) are not built and are refused by name.
/// </summary>
internal static class HfMixtureOfExperts
{
    public static LlamaConfig Read(HfConfigFields f, LlamaConfig config)
    {
        if (config.Architecture == ModelArchitecture.Mixtral)
        {
            var count = f.Int("num_local_experts", 1, LlamaConfig.MaxExperts);
            return config with
            {
                ExpertCount = count,
                ExpertsUsed = f.Int("num_experts_per_tok", 1, count),
                ExpertFeedForwardLength = config.FeedForwardLength,
                NormalizeExpertWeights = true,
            };
        }
        var experts = f.Int("num_experts", 1, LlamaConfig.MaxExperts);
        if (f.Int("decoder_sparse_step", 1, int.MaxValue, 1) is var step && step != 1)
            throw f.Error("decoder_sparse_step", $"{step} is not supported: only every layer a mixture of experts (1) is built");
        if (f.TryGet("mlp_only_layers", out var dense) && (dense.ValueKind != JsonValueKind.Array || dense.GetArrayLength() > 0))
            throw f.Error("mlp_only_layers", $"{HfConfigFields.Show(dense)} is not supported: only every layer a mixture of experts ([]) is built");
        return config with
        {
            ExpertCount = experts,
            ExpertsUsed = f.Int("num_experts_per_tok", 1, experts),
            ExpertFeedForwardLength = f.Int("moe_intermediate_size", 1, LlamaConfig.MaxDimension * 4L),
            NormalizeExpertWeights = f.Bool("norm_topk_prob", false),
        };
    }
}
