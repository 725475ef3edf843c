using System.Buffers.Binary;

namespace Bulwark.Engine.Kernels.Reference;

// The blocks-of-32 formats besides Q8_0/Q4_0: Q4_1, Q5_0, Q5_1 and IQ4_NL (ggml-quants.c's
// dequantize_row_*). Each writes its float arithmetic in ggml's order (x·d + m, not fused), so the
// result equals ggml's bit for bit.
public static partial class Dequantize
{
    /// <summary>
    /// Q4_1 blocks of 32 (20 bytes): f16 d, f16 m, 16 bytes of nibbles (element j the low nibble of
    /// byte j, j+16 its high nibble); x = q·d + m.
    /// </summary>
    public static void Q4_1(ReadOnlySpan<byte> source, Span<float> destination)
    {
        for (var block = 0; block * QuantBlock < destination.Length; block++)
        {
            var b = source.Slice(block * 20, 20);
            var d = (float)BinaryPrimitives.ReadHalfLittleEndian(b);
            var m = (float)BinaryPrimitives.ReadHalfLittleEndian(b[2..]);
            var y = destination.Slice(block * QuantBlock, QuantBlock);
            for (var j = 0; j < 16; j++)
            {
                y[j] = (b[4 + j] & 0x0F) * d + m;
                y[j + 16] = (b[4 + j] >> 4) * d + m;
            }
        }
    }

    /// <summary>
    /// Q5_0 blocks of 32 (22 bytes): f16 d, 32 high bits (bit j is element j's fifth bit), 16 bytes of
    /// nibbles as Q4_0; x = d·(q − 16).
    /// </summary>
    public static void Q5_0(ReadOnlySpan<byte> source, Span<float> destination)
    {
        for (var block = 0; block * QuantBlock < destination.Length; block++)
        {
            var b = source.Slice(block * 22, 22);
            var d = (float)BinaryPrimitives.ReadHalfLittleEndian(b);
            var qh = BinaryPrimitives.ReadUInt32LittleEndian(b[2..]);
            var y = destination.Slice(block * QuantBlock, QuantBlock);
            for (var j = 0; j < 16; j++)
            {
                var (low, high) = Five(b[6 + j], qh, j);
                y[j] = (low - 16) * d;
                y[j + 16] = (high - 16) * d;
            }
        }
    }

    /// <summary>Q5_1 blocks of 32 (24 bytes): f16 d, f16 m, 32 high bits, 16 bytes of nibbles; x = q·d + m.</summary>
    public static void Q5_1(ReadOnlySpan<byte> source, Span<float> destination)
    {
        for (var block = 0; block * QuantBlock < destination.Length; block++)
        {
            var b = source.Slice(block * 24, 24);
            var d = (float)BinaryPrimitives.ReadHalfLittleEndian(b);
            var m = (float)BinaryPrimitives.ReadHalfLittleEndian(b[2..]);
            var qh = BinaryPrimitives.ReadUInt32LittleEndian(b[4..]);
            var y = destination.Slice(block * QuantBlock, QuantBlock);
            for (var j = 0; j < 16; j++)
            {
                var (low, high) = Five(b[8 + j], qh, j);
                y[j] = low * d + m;
                y[j + 16] = high * d + m;
            }
        }
    }

    /// <summary>The 5-bit quants j and j+16 of a Q5 block: byte j's nibbles with bits j and j+16 of qh on top.</summary>
    public static (int Low, int High) Five(byte nibbles, uint qh, int j) =>
        ((nibbles & 0x0F) | (int)(((qh >> j) << 4) & 0x10), (nibbles >> 4) | (int)((qh >> (j + 12)) & 0x10));

    /// <summary>IQ4_NL's 16 levels (ggml's kvalues_iq4nl): a non-linear grid fitted to weight distributions.</summary>
    public static ReadOnlySpan<sbyte> IQ4Levels => [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

    /// <summary>IQ4_NL blocks of 32 (18 bytes): f16 d, 16 bytes of nibbles as Q4_0, each an index into <see cref="IQ4Levels"/>; x = d·level.</summary>
    public static void IQ4_NL(ReadOnlySpan<byte> source, Span<float> destination)
    {
        for (var block = 0; block * QuantBlock < destination.Length; block++)
        {
            var b = source.Slice(block * 18, 18);
            var d = (float)BinaryPrimitives.ReadHalfLittleEndian(b);
            var y = destination.Slice(block * QuantBlock, QuantBlock);
            for (var j = 0; j < 16; j++)
            {
                y[j] = d * IQ4Levels[b[2 + j] & 0x0F];
                y[j + 16] = d * IQ4Levels[b[2 + j] >> 4];
            }
        }
    }
}
