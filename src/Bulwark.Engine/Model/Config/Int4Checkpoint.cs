namespace Bulwark.Engine.Model.Config;

/// <summary>The two packed 4-bit safetensors layouts Bulwark reads.</summary>
public enum Int4Method
{
    /// <summary>AutoAWQ's GEMM layout: qweight [in, out/8] with nibbles interleaved 0,2,4,6,1,3,5,7 along the output.</summary>
    Awq,

    /// <summary>AutoGPTQ's layout: qweight [in/8, out] with nibbles in order along the input, zeros stored minus one (v1).</summary>
    Gptq,
}

/// <summary>
/// A Hugging Face checkpoint's <c>quantization_config</c> for AWQ or GPTQ 4-bit weights: each linear
/// layer's <c>weight</c> is replaced by <c>qweight</c> (int32, eight 4-bit values per word), <c>qzeros</c>
/// (int32, packed zero points per group and output), <c>scales</c> (f16 per group and output) and, for
/// GPTQ, <c>g_idx</c> (int32, the group of each input). A value is w = (q − z)·s.
/// </summary>
public sealed record Int4Checkpoint
{
    public required Int4Method Method { get; init; }

    /// <summary>Inputs per group; 0 for one group over the whole input row (the configs' −1).</summary>
    public required int GroupSize { get; init; }

    /// <summary>Added to every stored zero point: 1 for GPTQ's v1 checkpoints (which store z − 1), 0 otherwise.</summary>
    public int ZeroOffset { get; init; }

    /// <summary>GPTQ's act order: <c>g_idx</c> may assign inputs to groups out of order.</summary>
    public bool DescAct { get; init; }

    /// <summary>GPTQ's symmetric quantization (zero points all 8; false for AWQ); informational, the stored zeros are used either way.</summary>
    public bool Symmetric { get; init; } = true;

    /// <summary>The only bit width the loader packs: 4.</summary>
    public const int Bits = 4;

    /// <summary>The group size must be a whole number of the kernels' 32-value blocks.</summary>
    public const int BlockSize = 32;

    /// <summary>The largest group size accepted (a whole row of the widest matrix a config may declare).</summary>
    public const int MaxGroupSize = LlamaConfig.MaxDimension * 4;

    /// <summary>Inputs per group in a row of <paramref name="columns"/> inputs.</summary>
    public int GroupWidth(int columns) => GroupSize == 0 ? columns : GroupSize;

    /// <summary>How the loader names the format, e.g. "AWQ 4-bit (group 128)".</summary>
    public override string ToString() =>
        $"{(Method == Int4Method.Awq ? "AWQ" : "GPTQ")} 4-bit ({(GroupSize == 0 ? "one group per row" : $"group {GroupSize}")}{(DescAct ? ", act order" : "")})";
}
