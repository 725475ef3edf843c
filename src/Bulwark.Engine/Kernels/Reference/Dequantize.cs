using System.Buffers.Binary;
using Bulwark.Engine.Formats;

namespace Bulwark.Engine.Kernels.Reference;

/// <summary>
/// Plain scalar dequantization of one row of weights to float32: the obviously-correct twin the
/// fast kernels are tested against. Layouts follow ggml-quants.c.
/// </summary>
public static partial class Dequantize
{
    public const int QuantBlock = 32;

    public static void Row(GgmlType type, ReadOnlySpan<byte> source, Span<float> destination)
    {
        switch (type)
        {
            case GgmlType.F32: F32(source, destination); break;
            case GgmlType.F16: F16(source, destination); break;
            case GgmlType.BF16: BF16(source, destination); break;
            case GgmlType.Q8_0: Q8_0(source, destination); break;
            case GgmlType.Q4_0: Q4_0(source, destination); break;
            case GgmlType.Q4_K: Q4_K(source, destination); break;
            case GgmlType.Q6_K: Q6_K(source, destination); break;
            case GgmlType.Q5_K: Q5_K(source, destination); break;
            case GgmlType.Q3_K: Q3_K(source, destination); break;
            case GgmlType.Q2_K: Q2_K(source, destination); break;
            case GgmlType.Q4_1: Q4_1(source, destination); break;
            case GgmlType.Q5_0: Q5_0(source, destination); break;
            case GgmlType.Q5_1: Q5_1(source, destination); break;
            case GgmlType.IQ4_NL: IQ4_NL(source, destination); break;
            case GgmlType.IQ4_XS: IQ4_XS(source, destination); break;
            default: throw new NotSupportedException($"weight type {type} is not supported (supported: {SupportedList})");
        }
    }

    public static bool IsSupported(GgmlType type) => type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16
        or GgmlType.Q8_0 or GgmlType.Q4_0 or GgmlType.Q4_1 or GgmlType.Q5_0 or GgmlType.Q5_1
        or GgmlType.Q2_K or GgmlType.Q3_K or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K
        or GgmlType.IQ4_NL or GgmlType.IQ4_XS;

    /// <summary>The supported types, for error messages.</summary>
    public const string SupportedList = "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS";

    /// <summary>Elements in a K-quant super-block (ggml's QK_K).</summary>
    public const int SuperBlock = 256;

    public static void F32(ReadOnlySpan<byte> source, Span<float> destination)
    {
        for (var i = 0; i < destination.Length; i++)
            destination[i] = BinaryPrimitives.ReadSingleLittleEndian(source.Slice(i * 4, 4));
    }

    public static void F16(ReadOnlySpan<byte> source, Span<float> destination)
    {
        for (var i = 0; i < destination.Length; i++)
            destination[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(source.Slice(i * 2, 2));
    }

    /// <summary>bfloat16 is the top half of a float32's bits.</summary>
    public static void BF16(ReadOnlySpan<byte> source, Span<float> destination)
    {
        for (var i = 0; i < destination.Length; i++)
            destination[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(source.Slice(i * 2, 2)) << 16);
    }

    /// <summary>Blocks of 32: f16 scale d, then 32 signed bytes q; x = d * q.</summary>
    public static void Q8_0(ReadOnlySpan<byte> source, Span<float> destination)
    {
        for (var block = 0; block * QuantBlock < destination.Length; block++)
        {
            var b = source.Slice(block * 34, 34);
            var d = (float)BinaryPrimitives.ReadHalfLittleEndian(b);
            for (var j = 0; j < QuantBlock; j++)
                destination[block * QuantBlock + j] = d * (sbyte)b[2 + j];
        }
    }

    /// <summary>
    /// Blocks of 32: f16 scale d, then 16 bytes; element j is the low nibble of byte j and
    /// element j+16 its high nibble, both offset by 8: x = d * (nibble - 8).
    /// </summary>
    public static void Q4_0(ReadOnlySpan<byte> source, Span<float> destination)
    {
        for (var block = 0; block * QuantBlock < destination.Length; block++)
        {
            var b = source.Slice(block * 18, 18);
            var d = (float)BinaryPrimitives.ReadHalfLittleEndian(b);
            for (var j = 0; j < 16; j++)
            {
                destination[block * QuantBlock + j] = d * ((b[2 + j] & 0x0F) - 8);
                destination[block * QuantBlock + j + 16] = d * ((b[2 + j] >> 4) - 8);
            }
        }
    }

    /// <summary>
    /// Q4_K super-blocks of 256 (144 bytes): f16 d, f16 dmin, 12 bytes packing eight 6-bit scales and
    /// eight 6-bit mins, 128 bytes of nibbles. Each 64 values use two (scale, min) pairs: the low
    /// nibbles of 32 bytes with the first, their high nibbles with the second; x = d·sc·q − dmin·m.
    /// As ggml-quants.c's dequantize_row_q4_K.
    /// </summary>
    public static void Q4_K(ReadOnlySpan<byte> source, Span<float> destination) => Q4OrQ5K(source, destination, 144, 16, -1);

    /// <summary>
    /// Q4_K and Q5_K (<paramref name="highBits"/> ≥ 0: the offset of Q5_K's 32 bytes of fifth bits,
    /// bit c of byte l for value 32c + l), as dequantize_row_q4_K/q5_K.
    /// </summary>
    private static void Q4OrQ5K(ReadOnlySpan<byte> source, Span<float> destination, int blockBytes, int nibbles, int highBits)
    {
        for (var block = 0; block * SuperBlock < destination.Length; block++)
        {
            var b = source.Slice(block * blockBytes, blockBytes);
            var d = (float)BinaryPrimitives.ReadHalfLittleEndian(b);
            var min = (float)BinaryPrimitives.ReadHalfLittleEndian(b[2..]);
            var scales = b.Slice(4, 12);
            var y = destination.Slice(block * SuperBlock, SuperBlock);
            for (int j = 0, sub = 0; j < SuperBlock; j += 64, sub += 2)
            {
                var (sc1, m1) = ScaleMinK4(sub, scales);
                var (sc2, m2) = ScaleMinK4(sub + 1, scales);
                float d1 = d * sc1, min1 = min * m1, d2 = d * sc2, min2 = min * m2;
                var qs = b.Slice(nibbles + j / 2, 32);
                for (var l = 0; l < 32; l++) y[j + l] = d1 * ((qs[l] & 0xF) + (highBits < 0 ? 0 : ((b[highBits + l] >> sub) & 1) << 4)) - min1;
                for (var l = 0; l < 32; l++) y[j + 32 + l] = d2 * ((qs[l] >> 4) + (highBits < 0 ? 0 : ((b[highBits + l] >> (sub + 1)) & 1) << 4)) - min2;
            }
        }
    }

    /// <summary>ggml's get_scale_min_k4: the 6-bit scale and min of sub-block j from the 12 packed bytes.</summary>
    public static (int Scale, int Min) ScaleMinK4(int j, ReadOnlySpan<byte> q) => j < 4
        ? (q[j] & 63, q[j + 4] & 63)
        : ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4));

    /// <summary>
    /// Q6_K super-blocks of 256 (210 bytes): 128 bytes of low nibbles, 64 bytes of 2-bit high parts,
    /// 16 signed 8-bit scales (one per 16 values), f16 d; x = d·scale·(q − 32). As dequantize_row_q6_K.
    /// </summary>
    public static void Q6_K(ReadOnlySpan<byte> source, Span<float> destination)
    {
        for (var block = 0; block * SuperBlock < destination.Length; block++)
        {
            var b = source.Slice(block * 210, 210);
            var d = (float)BinaryPrimitives.ReadHalfLittleEndian(b[208..]);
            var y = destination.Slice(block * SuperBlock, SuperBlock);
            for (var half = 0; half < 2; half++)
            {
                var ql = b.Slice(half * 64, 64);
                var qh = b.Slice(128 + half * 32, 32);
                var sc = b.Slice(192 + half * 8, 8);
                var o = half * 128;
                for (var l = 0; l < 32; l++)
                {
                    var s = l / 16;
                    var q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    var q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    var q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    var q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    y[o + l] = d * (sbyte)sc[s] * q1;
                    y[o + l + 32] = d * (sbyte)sc[s + 2] * q2;
                    y[o + l + 64] = d * (sbyte)sc[s + 4] * q3;
                    y[o + l + 96] = d * (sbyte)sc[s + 6] * q4;
                }
            }
        }
    }
}
