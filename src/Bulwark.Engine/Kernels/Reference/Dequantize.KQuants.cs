using System.Buffers.Binary;

namespace Bulwark.Engine.Kernels.Reference;

// The K-quant super-blocks of 256 besides Q4_K/Q6_K: Q5_K, Q3_K, Q2_K, and IQ4_XS (which shares
// their super-block). Float arithmetic in ggml-quants.c's order, so the results equal ggml's bit for bit.
public static partial class Dequantize
{
    /// <summary>
    /// Q5_K super-blocks of 256 (176 bytes): f16 d, f16 dmin, 12 bytes of 6-bit scales and mins as
    /// Q4_K, 32 bytes of high bits (bit c of byte l is the fifth bit of element 32c + l), 128 bytes
    /// of nibbles as Q4_K; x = d·sc·q − dmin·m.
    /// </summary>
    public static void Q5_K(ReadOnlySpan<byte> source, Span<float> destination) => Q4OrQ5K(source, destination, 176, 48, 16);

    /// <summary>
    /// Q3_K super-blocks of 256 (110 bytes): 32 bytes of high bits (bit c of byte l belongs to element
    /// 32c + l), 64 bytes of 2-bit quants (element 32c + l is bits 2(c%4).. of byte 32(c/4) + l), 12
    /// bytes packing sixteen 6-bit scales (one per 16 values, stored + 32), f16 d;
    /// x = d·(sc − 32)·(q − (high bit ? 0 : 4)).
    /// </summary>
    public static void Q3_K(ReadOnlySpan<byte> source, Span<float> destination)
    {
        Span<int> scales = stackalloc int[16];
        for (var block = 0; block * SuperBlock < destination.Length; block++)
        {
            var b = source.Slice(block * 110, 110);
            var d = (float)BinaryPrimitives.ReadHalfLittleEndian(b[108..]);
            Q3KScales(b.Slice(96, 12), scales);
            var y = destination.Slice(block * SuperBlock, SuperBlock);
            for (var i = 0; i < SuperBlock; i++)
            {
                int c = i / 32, l = i % 32;
                var low = (b[32 + (c / 4) * 32 + l] >> (2 * (c % 4))) & 3;
                var q = low - ((b[l] >> c & 1) != 0 ? 0 : 4);
                var dl = d * (scales[i / 16] - 32);
                y[i] = dl * q;
            }
        }
    }

    /// <summary>Q3_K's sixteen 6-bit scales (still + 32) from its 12 packed bytes: low 4 bits in bytes 0-7, high 2 bits in bytes 8-11.</summary>
    public static void Q3KScales(ReadOnlySpan<byte> packed, Span<int> scales)
    {
        for (var j = 0; j < 16; j++)
        {
            var low = j < 8 ? packed[j] & 0xF : packed[j - 8] >> 4;
            var high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
            scales[j] = low | (high << 4);
        }
    }

    /// <summary>
    /// Q2_K super-blocks of 256 (84 bytes): 16 bytes of 4-bit scale (low) and min (high) per 16
    /// values, 64 bytes of 2-bit quants laid out as Q3_K's, f16 d, f16 dmin; x = d·sc·q − dmin·m.
    /// </summary>
    public static void Q2_K(ReadOnlySpan<byte> source, Span<float> destination)
    {
        for (var block = 0; block * SuperBlock < destination.Length; block++)
        {
            var b = source.Slice(block * 84, 84);
            var d = (float)BinaryPrimitives.ReadHalfLittleEndian(b[80..]);
            var min = (float)BinaryPrimitives.ReadHalfLittleEndian(b[82..]);
            var y = destination.Slice(block * SuperBlock, SuperBlock);
            for (var i = 0; i < SuperBlock; i++)
            {
                int c = i / 32, l = i % 32;
                var sc = b[i / 16];
                float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                y[i] = dl * ((b[16 + (c / 4) * 32 + l] >> (2 * (c % 4))) & 3) - ml;
            }
        }
    }

    /// <summary>
    /// IQ4_XS super-blocks of 256 (136 bytes): f16 d, 16 bits of high scale parts (2 per 32 values),
    /// 4 bytes of low scale nibbles, 128 bytes of nibbles indexing <see cref="IQ4Levels"/> (each 32 values
    /// laid out as an IQ4_NL block); x = d·(scale − 32)·level.
    /// </summary>
    public static void IQ4_XS(ReadOnlySpan<byte> source, Span<float> destination)
    {
        for (var block = 0; block * SuperBlock < destination.Length; block++)
        {
            var b = source.Slice(block * 136, 136);
            var d = (float)BinaryPrimitives.ReadHalfLittleEndian(b);
            var y = destination.Slice(block * SuperBlock, SuperBlock);
            for (var ib = 0; ib < 8; ib++)
            {
                var dl = d * (IQ4XSScale(b, ib) - 32);
                var qs = b.Slice(8 + ib * 16, 16);
                for (var j = 0; j < 16; j++)
                {
                    y[ib * 32 + j] = dl * IQ4Levels[qs[j] & 0xF];
                    y[ib * 32 + j + 16] = dl * IQ4Levels[qs[j] >> 4];
                }
            }
        }
    }

    /// <summary>IQ4_XS's 6-bit scale (still + 32) of its 32 values <paramref name="ib"/>.</summary>
    public static int IQ4XSScale(ReadOnlySpan<byte> block, int ib) =>
        ((block[4 + ib / 2] >> (4 * (ib % 2))) & 0xF) | (((BinaryPrimitives.ReadUInt16LittleEndian(block[2..]) >> (2 * ib)) & 3) << 4);
}
