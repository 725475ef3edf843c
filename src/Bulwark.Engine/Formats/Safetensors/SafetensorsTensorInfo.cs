namespace Bulwark.Engine.Formats.Safetensors;

/// <summary>
/// One tensor of a safetensors file, already checked: its bytes lie inside the file, overlap no
/// other tensor and hold exactly product(shape) elements of its dtype.
/// </summary>
/// <param name="Name">The header key, e.g. <c>model.layers.0.self_attn.q_proj.weight</c>.</param>
/// <param name="DType">The dtype as written in the header (<c>F32</c>, <c>F16</c>, <c>BF16</c>).</param>
/// <param name="Type">The same element type in ggml's terms, which the kernels use.</param>
/// <param name="Shape">Dimensions outermost first, as PyTorch writes them (rows, columns).</param>
/// <param name="FileOffset">Absolute offset of the first byte in the file.</param>
/// <param name="ByteSize">Bytes of data (data_offsets end − begin).</param>
public sealed record SafetensorsTensorInfo(string Name, string DType, GgmlType Type, long[] Shape, long FileOffset, long ByteSize)
{
    public long ElementCount => Shape.Aggregate(1L, (product, d) => product * d);
}
