using System.Buffers.Binary;
using Bulwark.Engine.Formats;

namespace Bulwark.Engine.Kernels.Reference;

/// <summary>
/// Plain scalar dequantization of one row of weights to float32: the obviously-correct twin the
/// fast kernels are tested against. Layouts follow ggml-quants.c.
/// </summary>
public static class Dequantize
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
            default: throw new NotSupportedException($"weight type {type} is not supported (supported: F32, F16, BF16, Q8_0, Q4_0)");
        }
    }

    public static bool IsSupported(GgmlType type) =>
        type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 or GgmlType.Q8_0 or GgmlType.Q4_0;

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
}
