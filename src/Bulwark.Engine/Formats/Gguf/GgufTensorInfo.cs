namespace Bulwark.Engine.Formats.Gguf;

/// <summary>
/// One tensor's entry in a GGUF file, already checked against the file: its bytes lie inside
/// the data section and overlap no other tensor.
/// </summary>
/// <param name="Name">Tensor name, e.g. <c>blk.0.attn_q.weight</c>.</param>
/// <param name="Type">Element type.</param>
/// <param name="Dimensions">Sizes innermost-first, as GGUF stores them: <c>Dimensions[0]</c> is the row length.</param>
/// <param name="FileOffset">Absolute offset of the first byte in the file.</param>
/// <param name="ByteSize">Bytes the tensor occupies.</param>
public sealed record GgufTensorInfo(string Name, GgmlType Type, long[] Dimensions, long FileOffset, long ByteSize)
{
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (var d in Dimensions) n *= d;
            return n;
        }
    }

    /// <summary>Row length (innermost dimension).</summary>
    public long Columns => Dimensions.Length > 0 ? Dimensions[0] : 1;

    /// <summary>Number of rows: every dimension but the innermost.</summary>
    public long Rows => Dimensions.Length > 0 ? ElementCount / Dimensions[0] : 1;
}
