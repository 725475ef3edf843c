namespace Bulwark.Engine.Formats;

/// <summary>ggml tensor element types, with the numeric ids GGUF stores (ggml.h's <c>ggml_type</c>).</summary>
public enum GgmlType : uint
{
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ2_XXS = 16,
    IQ2_XS = 17,
    IQ3_XXS = 18,
    IQ1_S = 19,
    IQ4_NL = 20,
    IQ3_S = 21,
    IQ2_S = 22,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    IQ1_M = 29,
    BF16 = 30,
    TQ1_0 = 34,
    TQ2_0 = 35,
    MXFP4 = 39,
}

/// <summary>Block geometry of each <see cref="GgmlType"/>: a row is a whole number of blocks.</summary>
public static class GgmlTypes
{
    /// <summary>Elements per quantization block (1 for plain types).</summary>
    public static int BlockSize(GgmlType type) => Geometry(type).Elements;

    /// <summary>Bytes per quantization block.</summary>
    public static int BlockBytes(GgmlType type) => Geometry(type).Bytes;

    /// <summary>True when the id is one this reader knows the block geometry of.</summary>
    public static bool IsKnown(uint id) => Enum.IsDefined((GgmlType)id);

    /// <summary>
    /// Bytes taken by <paramref name="elements"/> elements, or -1 when the count is not a whole
    /// number of blocks or the size would overflow a long.
    /// </summary>
    public static long ByteSize(GgmlType type, long elements)
    {
        var (blockElements, blockBytes) = Geometry(type);
        if (elements < 0 || elements % blockElements != 0) return -1;
        var blocks = elements / blockElements;
        if (blocks > long.MaxValue / blockBytes) return -1;
        return blocks * blockBytes;
    }

    /// <summary>llama.cpp's <c>general.file_type</c> (<c>llama_ftype</c>) for a file whose matrices are all <paramref name="type"/>.</summary>
    public static uint LlamaFileType(GgmlType type) => type switch
    {
        GgmlType.F32 => 0,
        GgmlType.F16 => 1,
        GgmlType.Q4_0 => 2,
        GgmlType.Q8_0 => 7,
        GgmlType.BF16 => 32,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "no llama_ftype for this type"),
    };

    private static (int Elements, int Bytes) Geometry(GgmlType type) => type switch
    {
        GgmlType.F32 => (1, 4),
        GgmlType.F16 => (1, 2),
        GgmlType.BF16 => (1, 2),
        // 32 elements: f16 scale + 16 bytes of nibbles.
        GgmlType.Q4_0 => (32, 18),
        GgmlType.Q4_1 => (32, 20),
        GgmlType.Q5_0 => (32, 22),
        GgmlType.Q5_1 => (32, 24),
        // 32 elements: f16 scale + 32 signed bytes.
        GgmlType.Q8_0 => (32, 34),
        GgmlType.Q8_1 => (32, 36),
        // K-quants use super-blocks of 256 (QK_K).
        GgmlType.Q2_K => (256, 84),
        GgmlType.Q3_K => (256, 110),
        GgmlType.Q4_K => (256, 144),
        GgmlType.Q5_K => (256, 176),
        GgmlType.Q6_K => (256, 210),
        GgmlType.Q8_K => (256, 292),
        // The i-quants and ternary types (ggml's type_traits): known so a file holding them is refused
        // by name; IQ4_NL and IQ4_XS are the ones the engine runs.
        GgmlType.IQ2_XXS => (256, 66),
        GgmlType.IQ2_XS => (256, 74),
        GgmlType.IQ3_XXS => (256, 98),
        GgmlType.IQ1_S => (256, 50),
        GgmlType.IQ4_NL => (32, 18),
        GgmlType.IQ3_S => (256, 110),
        GgmlType.IQ2_S => (256, 82),
        GgmlType.IQ4_XS => (256, 136),
        GgmlType.IQ1_M => (256, 56),
        GgmlType.TQ1_0 => (256, 54),
        GgmlType.TQ2_0 => (256, 66),
        GgmlType.MXFP4 => (32, 17),
        GgmlType.I8 => (1, 1),
        GgmlType.I16 => (1, 2),
        GgmlType.I32 => (1, 4),
        GgmlType.I64 => (1, 8),
        GgmlType.F64 => (1, 8),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown ggml type"),
    };
}
