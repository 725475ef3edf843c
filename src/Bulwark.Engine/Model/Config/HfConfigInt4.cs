namespace Bulwark.Engine.Model.Config;

/// <summary>
/// Reads <c>quantization_config</c> of an AWQ or GPTQ checkpoint with transformers' defaults (<c>AwqConfig</c>: bits 4,
/// group 128, zero_point true, version gemm, backend autoawq; <c>GPTQConfig</c>: group 128, desc_act false, sym true,
/// checkpoint_format gptq). Everything the loader cannot repack is refused naming the key: other methods
/// (bitsandbytes, fp8, …), bit widths other than 4, group sizes that are not a whole number of 32-value blocks,
/// AWQ's GEMV/Marlin/ExLlama layouts and llm-awq's packing, GPTQ's Marlin format.
/// </summary>
internal static class HfConfigInt4
{
    public const string Key = "quantization_config";

    public static Int4Checkpoint Read(HfConfigFields q)
    {
        var method = q.String("quant_method") ?? throw q.Error("quant_method", "is missing (supported: awq, gptq)");
        return method.ToLowerInvariant() switch
        {
            "awq" => Awq(q),
            "gptq" => Gptq(q),
            _ => throw q.Error("quant_method", $"\"{HfConfigFields.Cut(method)}\" is not supported (supported: awq, gptq; or use F32/F16/BF16 safetensors or a GGUF file)"),
        };
    }

    private static Int4Checkpoint Awq(HfConfigFields q)
    {
        Bits(q, q.Has("bits") || !q.Has("w_bit") ? "bits" : "w_bit", fallback: 4);
        var group = GroupSize(q, q.Has("group_size") || !q.Has("q_group_size") ? "group_size" : "q_group_size");
        if (!q.Bool("zero_point", true))
            throw q.Error("zero_point", "false is not supported (AutoAWQ's GEMM layout stores zero points; w = (q − z)·s)");
        var version = q.String("version") ?? "gemm";
        if (!version.Equals("gemm", StringComparison.OrdinalIgnoreCase))
            throw q.Error("version", $"\"{HfConfigFields.Cut(version)}\" is not supported (only AutoAWQ's \"gemm\" packing; GEMV, Marlin and ExLlama layouts are not)");
        var backend = q.String("backend") ?? "autoawq";
        if (!backend.Equals("autoawq", StringComparison.OrdinalIgnoreCase))
            throw q.Error("backend", $"\"{HfConfigFields.Cut(backend)}\" is not supported (only AutoAWQ's packing; llm-awq orders nibbles differently)");
        return new Int4Checkpoint { Method = Int4Method.Awq, GroupSize = group, Symmetric = false };
    }

    private static Int4Checkpoint Gptq(HfConfigFields q)
    {
        Bits(q, "bits", fallback: null);
        var group = GroupSize(q, "group_size");
        if (q.Bool("is_marlin_format", false))
            throw q.Error("is_marlin_format", "true is not supported (Marlin repacks the weights; only AutoGPTQ's own layout is read)");
        var format = q.String("checkpoint_format") ?? "gptq";
        var offset = format.ToLowerInvariant() switch
        {
            "gptq" => 1, // AutoGPTQ's v1 format stores every zero point minus one
            "gptq_v2" => 0,
            _ => throw q.Error("checkpoint_format", $"\"{HfConfigFields.Cut(format)}\" is not supported (supported: gptq, gptq_v2)"),
        };
        return new Int4Checkpoint
        {
            Method = Int4Method.Gptq,
            GroupSize = group,
            ZeroOffset = offset,
            DescAct = q.Bool("desc_act", false),
            Symmetric = q.Bool("sym", true),
        };
    }

    private static void Bits(HfConfigFields q, string key, int? fallback)
    {
        var bits = q.Int(key, 1, 64, fallback);
        if (bits != Int4Checkpoint.Bits)
            throw q.Error(key, $"{bits} is not supported (only 4-bit AWQ/GPTQ weights are read)");
    }

    /// <summary>The group size, 0 for the configs' −1 (one group per row).</summary>
    private static int GroupSize(HfConfigFields q, string key)
    {
        var group = q.Int(key, -1, Int4Checkpoint.MaxGroupSize, 128);
        if (group == -1) return 0;
        if (group <= 0 || group % Int4Checkpoint.BlockSize != 0)
            throw q.Error(key, $"{group} is not supported (must be -1 or a positive multiple of {Int4Checkpoint.BlockSize}, the kernels' block)");
        return group;
    }
}
