using Bulwark.Engine.Formats;
using Bulwark.Engine.Kernels.Cpu;
using Bulwark.Engine.Memory;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Model.Weights;

namespace Bulwark.Engine.Model.Loading;

/// <summary>
/// The linear layers of an AWQ or GPTQ checkpoint, repacked once at load into Q4_1 rows (32-value blocks of f16 d,
/// f16 m and 16 bytes of nibbles: value = d·q + m), which the quantized kernels multiply against 8-bit activations.
/// A stored value is w = (q − z)·s with s an f16 per group and output and z a 4-bit zero point; it becomes d = s
/// (exact) and m = f16(−z·s): the only rounding is m's, at most half an f16 ulp of z·s (|z·s|·2⁻¹¹, under s/128
/// since z ≤ 16), so the repacked values are within that of the format's own.
/// <para>
/// Each 32-input block must sit in one group. AWQ's and ordered GPTQ's groups are consecutive runs of group_size
/// inputs, so they always do. GPTQ's act order (desc_act) assigns inputs to groups through g_idx in any order: the
/// inputs are then sorted by group (stably) at load, the matrix keeps that order (<see cref="WeightMatrix.InputOrder"/>)
/// and gathers its input once per multiply. A g_idx whose groups, once sorted, do not fill whole 32-input blocks is
/// refused naming the tensor.
/// </para>
/// The packed tensors' mapped pages are handed back once repacked: the resident copy is the Q4_1 one.
/// </summary>
internal sealed unsafe class Int4Matrices(ITensorSource source, Int4Checkpoint format)
{
    /// <summary>AWQ stores output column 8c + Order[i] in nibble i of word c; nibble i of output 8c + j is Nibble[j].</summary>
    private static readonly int[] AwqNibbleOfColumn = [0, 4, 1, 5, 2, 6, 3, 7];

    public const int Q4_1BlockBytes = 20;

    /// <summary>
    /// The repacked matrix stored under <paramref name="weightName"/>'s prefix (<c>….qweight</c> and its
    /// siblings), or null when the checkpoint holds that layer unquantized (e.g. lm_head, modules_to_not_convert).
    /// </summary>
    public WeightMatrix? TryLoad(string weightName, int rows, int columns)
    {
        if (!weightName.EndsWith(".weight", StringComparison.Ordinal)) return null;
        var prefix = weightName[..^".weight".Length];
        if (!source.TryGet(prefix + ".qweight", out var qweight)) return null;
        if (source.TryGet(weightName, out _))
            throw new ModelFormatException(source.Location, weightName, $"is stored both unquantized and as {prefix}.qweight");
        if (rows % 8 != 0)
            throw new ModelFormatException(source.Location, qweight.Name, $"needs an output width that is a multiple of 8 (eight 4-bit values per int32); the config gives {rows}");
        var group = format.GroupWidth(columns);
        if (columns % Int4Checkpoint.BlockSize != 0 || columns % group != 0)
            throw new ModelFormatException(source.Location, qweight.Name,
                $"input width {columns} must be a multiple of {Int4Checkpoint.BlockSize} and of quantization_config.group_size {group}");
        var groups = columns / group;
        var awq = format.Method == Int4Method.Awq;
        Check(qweight, GgmlType.I32, awq ? [columns, rows / 8] : [columns / 8, rows]);
        var qzeros = Get(prefix + ".qzeros", GgmlType.I32, groups, rows / 8);
        var scales = Get(prefix + ".scales", GgmlType.F16, groups, rows);
        var (order, blockGroups) = awq ? (null, Consecutive(columns, group)) : Groups(prefix, columns, group, groups);
        var job = new RepackJob
        {
            Awq = awq,
            Rows = rows,
            Columns = columns,
            QWeight = (uint*)qweight.Data,
            QZeros = (uint*)qzeros.Data,
            Scales = (ushort*)scales.Data,
            ZeroOffset = format.ZeroOffset,
        };
        var rowBytes = (long)columns / Int4Checkpoint.BlockSize * Q4_1BlockBytes;
        var data = (byte*)AnonymousPages.Allocate(rowBytes * rows);
        try
        {
            fixed (int* o = order)
            fixed (int* g = blockGroups)
            {
                job.Order = o;
                job.BlockGroups = g;
                job.Destination = data;
                job.RowBytes = rowBytes;
                WorkerPool.Shared.Run(&RepackRow, &job, rows);
            }
            if (job.BadScale != 0)
                throw new ModelFormatException(source.Location, scales.Name,
                    $"holds a scale that is not finite or whose product with a zero point overflows f16 (group {job.BadGroup}, output {job.BadRow})");
        }
        catch
        {
            AnonymousPages.Free(data, rowBytes * rows);
            throw;
        }
        if (source.IsFileMapped)
            foreach (var t in new[] { qweight, qzeros, scales })
                MappedPages.Release(t.Data, t.ByteSize);
        return WeightMatrix.Owning(prefix + ".qweight", GgmlType.Q4_1, rows, columns, data, order);
    }

    /// <summary>Whether <paramref name="weightName"/> is stored packed (for error messages about layers that cannot be).</summary>
    public bool IsPacked(string weightName) =>
        weightName.EndsWith(".weight", StringComparison.Ordinal) && source.TryGet(weightName[..^".weight".Length] + ".qweight", out _);

    private TensorView Get(string name, GgmlType type, params long[] shape)
    {
        if (!source.TryGet(name, out var t))
            throw new ModelFormatException(source.Location, name, "tensor is missing");
        Check(t, type, shape);
        return t;
    }

    private void Check(TensorView t, GgmlType type, long[] shape)
    {
        if (t.Type != type)
            throw new ModelFormatException(source.Location, t.Name, $"must be {(type == GgmlType.I32 ? "I32" : type.ToString())} for {format}; got {t.Type}");
        if (!t.Shape.SequenceEqual(shape))
            throw new ModelFormatException(source.Location, t.Name,
                $"shape [{string.Join(", ", t.Shape)}] does not match [{string.Join(", ", shape)}] that the config and {format} give");
    }

    private static int[] Consecutive(int columns, int group)
    {
        var blocks = new int[columns / Int4Checkpoint.BlockSize];
        for (var b = 0; b < blocks.Length; b++) blocks[b] = b * Int4Checkpoint.BlockSize / group;
        return blocks;
    }

    /// <summary>
    /// GPTQ's g_idx: null order and consecutive groups when it is the default i / group_size (or absent without act
    /// order); otherwise the inputs sorted stably by group and each 32-input block's group.
    /// </summary>
    private (int[]? Order, int[] BlockGroups) Groups(string prefix, int columns, int group, int groups)
    {
        var name = prefix + ".g_idx";
        if (!source.TryGet(name, out var view))
        {
            if (format.DescAct) throw new ModelFormatException(source.Location, name, "tensor is missing (quantization_config.desc_act is true: the groups of the inputs are needed)");
            return (null, Consecutive(columns, group));
        }
        Check(view, GgmlType.I32, [columns]);
        var g = new ReadOnlySpan<int>(view.Data, columns);
        var ordered = true;
        var counts = new int[groups];
        for (var i = 0; i < columns; i++)
        {
            if ((uint)g[i] >= (uint)groups)
                throw new ModelFormatException(source.Location, name, $"entry {i} is {g[i]}; groups are 0 to {groups - 1}");
            ordered &= g[i] == i / group;
            counts[g[i]]++;
        }
        if (ordered) return (null, Consecutive(columns, group));
        // Act order: sort the inputs by group (a counting sort, stable), so each group's inputs sit together.
        var start = new int[groups];
        for (var k = 1; k < groups; k++) start[k] = start[k - 1] + counts[k - 1];
        for (var k = 0; k < groups; k++)
            if (counts[k] % Int4Checkpoint.BlockSize != 0)
                throw new ModelFormatException(source.Location, name,
                    $"group {k} holds {counts[k]} inputs; act order (desc_act) is supported when every group holds a multiple of {Int4Checkpoint.BlockSize}");
        var order = new int[columns];
        var next = (int[])start.Clone();
        for (var i = 0; i < columns; i++) order[next[g[i]]++] = i;
        var blocks = new int[columns / Int4Checkpoint.BlockSize];
        for (var b = 0; b < blocks.Length; b++) blocks[b] = g[order[b * Int4Checkpoint.BlockSize]];
        return (order, blocks);
    }

    private struct RepackJob
    {
        public bool Awq;
        public int Rows, Columns, ZeroOffset;
        public uint* QWeight, QZeros;
        public ushort* Scales;
        public int* Order, BlockGroups;
        public byte* Destination;
        public long RowBytes;
        public int BadScale, BadGroup, BadRow;
    }

    /// <summary>The 4-bit value of input <paramref name="input"/> for output <paramref name="row"/> as the format packs it.</summary>
    private static int Quant(RepackJob* job, int input, int row) => job->Awq
        ? (int)(job->QWeight[(long)input * (job->Rows / 8) + row / 8] >> (4 * AwqNibbleOfColumn[row % 8])) & 0xF
        : (int)(job->QWeight[(long)(input / 8) * job->Rows + row] >> (4 * (input % 8))) & 0xF;

    /// <summary>The zero point of <paramref name="group"/> for output <paramref name="row"/>, with GPTQ v1's + 1.</summary>
    private static int Zero(RepackJob* job, int group, int row)
    {
        var word = job->QZeros[(long)group * (job->Rows / 8) + row / 8];
        var nibble = job->Awq ? AwqNibbleOfColumn[row % 8] : row % 8;
        return (int)(word >> (4 * nibble) & 0xF) + job->ZeroOffset;
    }

    private static void RepackRow(void* context, int row)
    {
        var job = (RepackJob*)context;
        var destination = job->Destination + row * job->RowBytes;
        var blocks = job->Columns / Int4Checkpoint.BlockSize;
        for (var b = 0; b < blocks; b++)
        {
            var group = job->BlockGroups[b];
            var scaleBits = job->Scales[(long)group * job->Rows + row];
            var scale = (float)BitConverter.UInt16BitsToHalf(scaleBits);
            var min = (Half)(-Zero(job, group, row) * scale);
            if (!float.IsFinite(scale) || !Half.IsFinite(min))
            {
                job->BadGroup = group;
                job->BadRow = row;
                job->BadScale = 1;
                min = Half.Zero;
            }
            var block = destination + b * Q4_1BlockBytes;
            *(ushort*)block = scaleBits;
            *(ushort*)(block + 2) = BitConverter.HalfToUInt16Bits(min);
            for (var j = 0; j < 16; j++)
            {
                var lo = Input(job, b * Int4Checkpoint.BlockSize + j);
                var hi = Input(job, b * Int4Checkpoint.BlockSize + j + 16);
                block[4 + j] = (byte)(Quant(job, lo, row) | Quant(job, hi, row) << 4);
            }
        }
    }

    /// <summary>The stored input at position <paramref name="position"/> of the repacked row (sorted by group under act order).</summary>
    private static int Input(RepackJob* job, int position) => job->Order == null ? position : job->Order[position];
}
