using Bulwark.Engine.Formats;
using Bulwark.Engine.Memory;

namespace Bulwark.Engine.Kernels.Cpu;

/// <summary>
/// Q8_0, Q4_0 or Q5_0 weights repacked for <see cref="PackedMatMul"/>: rows in groups of 8, interleaved 4 bytes at a
/// time, so one 256-bit vector holds the same 4 quants of 8 rows and one <c>vpdpbusd</c> (or, without VNNI,
/// one <c>vpmaddubsw</c>) against 4 broadcast activation bytes advances 8 dot products at once. The per-block work that the
/// ggml layout pays for every (row, token) pair (sign fix-up, int→float, scale) is then paid once
/// per 8 rows, and each group's weights stay in registers across a tile of 4 tokens.
/// <para>
/// <c>vpdpbusd</c> multiplies unsigned by signed bytes, so the weights are stored unsigned: a Q8_0
/// quant w as w + 128 (w ^ 0x80), a Q4_0 nibble as it is (value + 8), a Q5_0 quant as its 5 bits (value + 16). The offset times Σx of the
/// activation block is subtracted once per block (<see cref="Q8Rows.Sums"/>). Integer sums are
/// exact, so the result equals the scalar twin bit for bit.
/// </para>
/// Layout: <see cref="Quants"/> holds, per group and block, Q8_0: 8 vectors k = 0..7 of [row 0
/// quants 4k..4k+3, row 1 …, row 7 …]; Q4_0: 4 vectors k = 0..3 of the same rows' ggml bytes
/// 4k..4k+3 (low nibbles are quants 4k.., high nibbles quants 16+4k..); Q5_0: Q4_0's 4 vectors of nibbles, then one
/// of fifth bits, byte 4·row + i holding in bit c the fifth bit of quant 4c + i — the quant chunk c holds in that
/// byte — so a chunk's fifth bits come out with one shift and one mask. Same bytes as the file. <see cref="Scales"/> holds the
/// 8 rows' f16 scales per group and block. Rows past the end of the matrix are zero.
/// </summary>
public sealed unsafe class PackedQuantMatrix : IDisposable
{
    public const int GroupRows = 8;
    private const int Block = 32;

    private PackedQuantMatrix(GgmlType type, int rows, int columns)
    {
        Type = type;
        Rows = rows;
        Columns = columns;
        Groups = (rows + GroupRows - 1) / GroupRows;
        Blocks = columns / Block;
        GroupBlockBytes = GroupBlockBytesOf(type);
        Quants = (byte*)AnonymousPages.Allocate(QuantBytes);
        Scales = (ushort*)AnonymousPages.Allocate(ScaleBytes);
    }

    public GgmlType Type { get; }
    public int Rows { get; }
    public int Columns { get; }
    public int Groups { get; }
    public int Blocks { get; }

    /// <summary>Bytes of quants per group and block: 256 for Q8_0, 128 for Q4_0, 160 for Q5_0.</summary>
    public int GroupBlockBytes { get; }

    /// <summary>Where a Q5_0 group block's fifth bits start (after its nibbles).</summary>
    public const int FifthBitsAt = GroupRows * Block / 2;

    private static int GroupBlockBytesOf(GgmlType type) => type switch
    {
        GgmlType.Q8_0 => GroupRows * Block,
        GgmlType.Q5_0 => FifthBitsAt + GroupRows * Block / 8,
        _ => GroupRows * Block / 2,
    };

    public byte* Quants { get; private set; }

    /// <summary>No scale is an f16 infinity or NaN (exponent all ones), so kernels may convert them with integer operations.</summary>
    public bool FiniteScales { get; private set; }

    private static bool AllFinite(ushort* halves, long count)
    {
        for (long i = 0; i < count; i++)
            if ((halves[i] & 0x7C00) == 0x7C00) return false;
        return true;
    }
    public ushort* Scales { get; private set; }

    /// <summary>What Σx is multiplied by to undo the unsigned storage: 128 for Q8_0, 8 for Q4_0, 16 for Q5_0.</summary>
    public int Offset => Type switch { GgmlType.Q8_0 => 128, GgmlType.Q5_0 => 16, _ => 8 };

    /// <summary>Bytes this copy holds (quants and scales).</summary>
    public long ByteSize => QuantBytes + ScaleBytes;

    private long QuantBytes => (long)Groups * Blocks * GroupBlockBytes;
    private long ScaleBytes => (long)Groups * Blocks * GroupRows * sizeof(ushort);

    public static bool CanPack(GgmlType type, int columns) =>
        type is GgmlType.Q8_0 or GgmlType.Q4_0 or GgmlType.Q5_0 && columns > 0 && columns % Block == 0;

    /// <summary>Repacks rows of ggml Q8_0/Q4_0/Q5_0 blocks (<paramref name="rowBytes"/> apart), one group per work item.</summary>
    public static PackedQuantMatrix Pack(GgmlType type, byte* data, long rowBytes, int rows, int columns, WorkerPool pool)
    {
        if (!CanPack(type, columns))
            throw new ArgumentException($"only Q8_0/Q4_0/Q5_0 rows of whole 32-value blocks can be packed; got {type} with {columns} columns");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rows);
        var packed = new PackedQuantMatrix(type, rows, columns);
        var job = new PackJob { Source = data, RowBytes = rowBytes, Packed = packed.Quants, Scales = packed.Scales, Rows = rows, Blocks = packed.Blocks, GroupBlockBytes = packed.GroupBlockBytes, Type = type };
        pool.Run(&PackGroup, &job, packed.Groups);
        packed.FiniteScales = AllFinite(packed.Scales, packed.ScaleBytes / sizeof(ushort));
        return packed;
    }

    private struct PackJob
    {
        public byte* Source, Packed;
        public ushort* Scales;
        public long RowBytes;
        public int Rows, Blocks, GroupBlockBytes;
        public GgmlType Type;
    }

    /// <summary>A ggml block's size and where its quants start (after d, and Q5_0's 4 bytes of fifth bits).</summary>
    private static (int BlockBytes, int QuantsAt, int Words) Layout(GgmlType type) => type switch
    {
        GgmlType.Q8_0 => (34, 2, 8),
        GgmlType.Q5_0 => (22, 6, 4),
        _ => (18, 2, 4),
    };

    private static void PackGroup(void* context, int group)
    {
        var job = (PackJob*)context;
        var (blockBytes, quantsAt, words) = Layout(job->Type); // words: 4-byte words of quants per row and block
        var isQ8 = job->Type == GgmlType.Q8_0;
        var isQ5 = job->Type == GgmlType.Q5_0;
        for (var b = 0; b < job->Blocks; b++)
        {
            var index = (long)group * job->Blocks + b;
            var destination = job->Packed + index * job->GroupBlockBytes;
            var scales = job->Scales + index * GroupRows;
            for (var lane = 0; lane < GroupRows; lane++)
            {
                var row = group * GroupRows + lane;
                if (row >= job->Rows)
                {
                    scales[lane] = 0;
                    for (var k = 0; k < words; k++) *(uint*)(destination + (k * GroupRows + lane) * 4) = 0;
                    if (isQ5) *(uint*)(destination + FifthBitsAt + lane * 4) = 0;
                    continue;
                }
                var block = job->Source + row * job->RowBytes + b * blockBytes;
                scales[lane] = *(ushort*)block;
                for (var k = 0; k < words; k++)
                {
                    var word = *(uint*)(block + quantsAt + k * 4);
                    *(uint*)(destination + (k * GroupRows + lane) * 4) = isQ8 ? word ^ 0x80808080u : word;
                }
                if (isQ5) *(uint*)(destination + FifthBitsAt + lane * 4) = SpreadFifthBits(*(uint*)(block + 2));
            }
        }
    }

    /// <summary>Q5_0's 32 fifth bits (bit j: quant j) as the packed lane's 4 bytes: byte i, bit c = bit 4c + i.</summary>
    internal static uint SpreadFifthBits(uint qh)
    {
        var spread = 0u;
        for (var j = 0; j < Block; j++) spread |= ((qh >> j) & 1) << ((j % 4) * 8 + j / 4);
        return spread;
    }

    /// <summary>The inverse of <see cref="SpreadFifthBits"/>.</summary>
    internal static uint GatherFifthBits(uint spread)
    {
        var qh = 0u;
        for (var j = 0; j < Block; j++) qh |= ((spread >> ((j % 4) * 8 + j / 4)) & 1) << j;
        return qh;
    }

    /// <summary>
    /// Row <paramref name="row"/> back in its ggml layout (f16 scale and quants per 32-value block),
    /// exactly the bytes that were packed: for a matrix that kept only this copy.
    /// </summary>
    public void StoredRow(int row, Span<byte> destination)
    {
        if ((uint)row >= (uint)Rows) throw new ArgumentOutOfRangeException(nameof(row), row, $"the matrix has {Rows} rows");
        var isQ8 = Type == GgmlType.Q8_0;
        var (blockBytes, quantsAt, words) = Layout(Type);
        if (destination.Length < Blocks * blockBytes)
            throw new ArgumentException($"a row needs {Blocks * blockBytes} bytes; got {destination.Length}", nameof(destination));
        var group = row / GroupRows;
        var lane = row % GroupRows;
        fixed (byte* d = destination)
        {
            for (var b = 0; b < Blocks; b++)
            {
                var index = (long)group * Blocks + b;
                var block = d + b * blockBytes;
                *(ushort*)block = Scales[index * GroupRows + lane];
                var source = Quants + index * GroupBlockBytes;
                for (var k = 0; k < words; k++)
                {
                    var word = *(uint*)(source + (k * GroupRows + lane) * 4);
                    *(uint*)(block + quantsAt + k * 4) = isQ8 ? word ^ 0x80808080u : word;
                }
                if (Type == GgmlType.Q5_0) *(uint*)(block + 2) = GatherFifthBits(*(uint*)(source + FifthBitsAt + lane * 4));
            }
        }
    }

    public void Dispose()
    {
        AnonymousPages.Free(Quants, QuantBytes);
        AnonymousPages.Free(Scales, ScaleBytes);
        Quants = null;
        Scales = null;
    }
}
