using System.Buffers.Binary;
using Bulwark.Engine.Formats;

namespace Bulwark.Engine.Kernels.Reference;

/// <summary>
/// Scalar float32 → ggml conversions, bit for bit what ggml's reference code writes
/// (<c>quantize_row_q8_0_ref</c>, <c>quantize_row_q4_0_ref</c>, <c>GGML_FP32_TO_FP16</c>,
/// <c>ggml_compute_fp32_to_bf16</c>), so a model quantized here equals one quantized by llama.cpp.
/// The inverse of <see cref="Dequantize"/>.
/// </summary>
public static class Quantize
{
    public const int QuantBlock = Dequantize.QuantBlock;

    /// <summary>Bytes <paramref name="elements"/> floats take as <paramref name="type"/>; throws when they are not whole blocks.</summary>
    public static int RowBytes(GgmlType type, int elements)
    {
        if (type is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 or GgmlType.Q8_0 or GgmlType.Q4_0))
            throw new NotSupportedException($"weight type {type} cannot be written (supported: F32, F16, BF16, Q8_0, Q4_0)");
        var bytes = GgmlTypes.ByteSize(type, elements);
        if (bytes < 0 || bytes > int.MaxValue)
            throw new ArgumentException($"{elements} elements are not a whole number of {type} blocks of {GgmlTypes.BlockSize(type)}", nameof(elements));
        return (int)bytes;
    }

    public static void Row(GgmlType type, ReadOnlySpan<float> source, Span<byte> destination)
    {
        var needed = RowBytes(type, source.Length);
        if (destination.Length != needed)
            throw new ArgumentException($"{source.Length} elements of {type} need {needed} bytes; destination has {destination.Length}", nameof(destination));
        switch (type)
        {
            case GgmlType.F32: F32(source, destination); break;
            case GgmlType.F16: F16(source, destination); break;
            case GgmlType.BF16: BF16(source, destination); break;
            case GgmlType.Q8_0: Q8_0(source, destination); break;
            case GgmlType.Q4_0: Q4_0(source, destination); break;
            default: throw new NotSupportedException($"weight type {type} cannot be written (supported: F32, F16, BF16, Q8_0, Q4_0)");
        }
    }

    /// <summary>A whole tensor of floats as <paramref name="type"/>; quantized types need the row length to be whole blocks.</summary>
    public static byte[] Tensor(GgmlType type, ReadOnlySpan<float> source, int rowLength)
    {
        if (rowLength < 1 || source.Length % rowLength != 0)
            throw new ArgumentException($"tensor of {source.Length} elements is not made of rows of {rowLength}", nameof(rowLength));
        var rowBytes = RowBytes(type, rowLength);
        var rows = source.Length / rowLength;
        var output = new byte[checked((long)rowBytes * rows)];
        for (var r = 0; r < rows; r++)
            Row(type, source.Slice(r * rowLength, rowLength), output.AsSpan(r * rowBytes, rowBytes));
        return output;
    }

    public static void F32(ReadOnlySpan<float> source, Span<byte> destination)
    {
        for (var i = 0; i < source.Length; i++)
            BinaryPrimitives.WriteSingleLittleEndian(destination.Slice(i * 4, 4), source[i]);
    }

    /// <summary>IEEE half, rounding to nearest even (as F16C's <c>_cvtss_sh(x, 0)</c> and ggml's scalar fallback do).</summary>
    public static void F16(ReadOnlySpan<float> source, Span<byte> destination)
    {
        for (var i = 0; i < source.Length; i++)
            BinaryPrimitives.WriteHalfLittleEndian(destination.Slice(i * 2, 2), (Half)source[i]);
    }

    public static void BF16(ReadOnlySpan<float> source, Span<byte> destination)
    {
        for (var i = 0; i < source.Length; i++)
            BinaryPrimitives.WriteUInt16LittleEndian(destination.Slice(i * 2, 2), ToBFloat16(source[i]));
    }

    /// <summary>ggml_compute_fp32_to_bf16: NaN stays a quiet NaN, everything else rounds to nearest even.</summary>
    public static ushort ToBFloat16(float value)
    {
        var bits = BitConverter.SingleToUInt32Bits(value);
        if ((bits & 0x7fffffff) > 0x7f800000) return (ushort)((bits >> 16) | 64);
        return (ushort)((bits + (0x7fff + ((bits >> 16) & 1))) >> 16);
    }

    /// <summary>quantize_row_q8_0_ref: d = max|x| / 127, q = round(x / d) (halves away from zero).</summary>
    public static void Q8_0(ReadOnlySpan<float> source, Span<byte> destination)
    {
        for (var block = 0; block * QuantBlock < source.Length; block++)
        {
            var x = source.Slice(block * QuantBlock, QuantBlock);
            var y = destination.Slice(block * 34, 34);
            var amax = 0f;
            foreach (var v in x) amax = MathF.Max(amax, MathF.Abs(v));
            var d = amax / 127f;
            var id = d != 0f ? 1f / d : 0f;
            BinaryPrimitives.WriteHalfLittleEndian(y, (Half)d);
            for (var j = 0; j < QuantBlock; j++)
                y[2 + j] = (byte)(sbyte)MathF.Round(x[j] * id, MidpointRounding.AwayFromZero);
        }
    }

    /// <summary>
    /// quantize_row_q4_0_ref: d = (the value of largest magnitude, with its sign) / -8, then
    /// q = min(15, trunc(x / d + 8.5)); element j in the low nibble of byte j, j+16 in the high one.
    /// </summary>
    public static void Q4_0(ReadOnlySpan<float> source, Span<byte> destination)
    {
        const int half = QuantBlock / 2;
        for (var block = 0; block * QuantBlock < source.Length; block++)
        {
            var x = source.Slice(block * QuantBlock, QuantBlock);
            var y = destination.Slice(block * 18, 18);
            float amax = 0f, max = 0f;
            foreach (var v in x)
            {
                if (amax < MathF.Abs(v))
                {
                    amax = MathF.Abs(v);
                    max = v;
                }
            }
            var d = max / -8f;
            var id = d != 0f ? 1f / d : 0f;
            BinaryPrimitives.WriteHalfLittleEndian(y, (Half)d);
            for (var j = 0; j < half; j++)
            {
                var lo = Math.Min(15, (int)(sbyte)(x[j] * id + 8.5f));
                var hi = Math.Min(15, (int)(sbyte)(x[half + j] * id + 8.5f));
                y[2 + j] = (byte)(lo | (hi << 4));
            }
        }
    }
}
