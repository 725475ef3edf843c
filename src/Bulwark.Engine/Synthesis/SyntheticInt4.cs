using System.Buffers.Binary;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Safetensors;
using Bulwark.Engine.Kernels.Reference;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Randomness;

namespace Bulwark.Engine.Synthesis;

/// <summary>
/// Writes a synthetic model as an AWQ or GPTQ 4-bit Hugging Face checkpoint, quantizing its F32 linear weights by the
/// formats' own definitions (deterministic, our code): per group of inputs and per output, AWQ's min-max asymmetric
/// quantization (AutoAWQ's <c>pseudo_quantize_tensor</c>: s = (max − min)/15, z = −round(min/s), q = clamp(round(w/s) + z,
/// 0, 15)) and GPTQ's round-to-nearest grid (GPTQ's <c>Quantizer</c>: the range widened to hold 0, symmetric with z = 8
/// when sym, s = range/15), with s rounded to f16 first as the checkpoint stores it. Only the rounding is GPTQ's: no
/// Hessian-based error correction (the file format does not record how its values were chosen). Norms, embeddings
/// and lm_head keep the spec's dtype (F32, F16 or BF16), as real checkpoints keep them unquantized.
/// <para>
/// With <see cref="Int4WriteOptions.DequantizedFolder"/>, also writes the same model with every linear weight
/// dequantized from the stored integers by the format's definition, w = (q − z)·s (GPTQ v1: z = stored + 1), as F32:
/// the reference the packed model is tested against.
/// </para>
/// </summary>
public static class SyntheticInt4
{
    /// <summary>AutoAWQ's pack order: nibble i of a word holds output column 8c + Order[i].</summary>
    private static readonly int[] AwqPackOrder = [0, 2, 4, 6, 1, 3, 5, 7];

    public static void Write(SyntheticModelSpec spec, string folder, Int4WriteOptions options)
    {
        spec.Validate();
        if (spec.DType is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16))
            throw new ArgumentException($"AWQ/GPTQ output keeps the unquantized tensors as F32, F16 or BF16; got dtype {spec.DType}");
        if (spec.Architecture == "phi3")
            throw new ArgumentException("AWQ/GPTQ output does not support phi3 (its q/k/v and gate/up are fused matrices the loader reads unquantized)");
        var format = options.Format;
        if (options.Symmetric == false && format.Method == Int4Method.Awq)
            throw new ArgumentException("AWQ is asymmetric (zero_point true); sym applies to GPTQ");
        if (options.ActOrder && format.Method == Int4Method.Awq)
            throw new ArgumentException("act order (desc_act) is a GPTQ option");
        var packed = new SafetensorsWriter();
        var twin = options.DequantizedFolder is null ? null : new SafetensorsWriter();
        foreach (var (name, tensor) in SyntheticModel.HuggingFaceTensors(spec))
        {
            var shape = tensor.Shape.Select(d => (long)d).ToArray();
            if (!IsLinear(name))
            {
                var bytes = Quantize.Tensor(spec.DType, tensor.Values, tensor.RowLength);
                packed.AddTensor(name, spec.DType, shape, bytes);
                twin?.AddTensor(name, spec.DType, shape, bytes);
                continue;
            }
            var layer = Layer.Quantize(tensor.Values, tensor.Shape[0], tensor.Shape[1], options, Fnv(name) ^ spec.Seed);
            var prefix = name[..^".weight".Length];
            layer.AddTo(packed, prefix, format);
            twin?.AddTensor(name, GgmlType.F32, shape, Quantize.Tensor(GgmlType.F32, layer.Dequantize(format), tensor.RowLength));
        }
        var vocabulary = SyntheticVocabulary.Create(spec.Vocab);
        Directory.CreateDirectory(folder);
        packed.WriteTo(Path.Combine(folder, "model.safetensors"));
        HuggingFaceFiles.Write(spec, vocabulary, folder, options);
        if (twin is null) return;
        Directory.CreateDirectory(options.DequantizedFolder!);
        twin.WriteTo(Path.Combine(options.DequantizedFolder!, "model.safetensors"));
        HuggingFaceFiles.Write(spec, vocabulary, options.DequantizedFolder!);
    }

    /// <summary>The linear layers AutoAWQ and AutoGPTQ quantize in a decoder layer (never lm_head).</summary>
    public static bool IsLinear(string huggingFaceName) =>
        huggingFaceName.StartsWith("model.layers.", StringComparison.Ordinal) && huggingFaceName.EndsWith("_proj.weight", StringComparison.Ordinal);

    private static ulong Fnv(string text)
    {
        var hash = 14695981039346656037UL;
        foreach (var c in text) hash = (hash ^ c) * 1099511628211UL;
        return hash;
    }

    /// <summary>One linear layer's 4-bit values, zero points and scales, by output row and input column.</summary>
    private sealed class Layer
    {
        public required int Rows, Columns, Groups;
        public required byte[,] Q; // [row, input]
        public required byte[,] Z; // [group, row], the zero point as the format stores it (GPTQ v1: z − 1, modulo 16)
        public required Half[,] S; // [group, row]
        public required int[] GroupOf; // group of each input

        public static Layer Quantize(float[] w, int rows, int columns, Int4WriteOptions options, ulong seed)
        {
            var format = options.Format;
            var width = format.GroupWidth(columns);
            if (columns % width != 0 || rows % 8 != 0 || columns % 8 != 0)
                throw new ArgumentException($"a {rows}×{columns} matrix cannot be packed in groups of {width} (rows and columns must be multiples of 8, columns of the group)");
            var groups = columns / width;
            // Act order: input perm[i] is the i-th input GPTQ visits, and the i-th visited falls in group i / width.
            var perm = Enumerable.Range(0, columns).ToArray();
            if (options.ActOrder)
            {
                var random = new SplitMixRandom(seed);
                for (var i = columns - 1; i > 0; i--)
                {
                    var j = (int)(random.NextUInt64() % (ulong)(i + 1));
                    (perm[i], perm[j]) = (perm[j], perm[i]);
                }
            }
            var groupOf = new int[columns];
            for (var i = 0; i < columns; i++) groupOf[perm[i]] = i / width;
            var layer = new Layer { Rows = rows, Columns = columns, Groups = groups, Q = new byte[rows, columns], Z = new byte[groups, rows], S = new Half[groups, rows], GroupOf = groupOf };
            for (var r = 0; r < rows; r++)
                for (var g = 0; g < groups; g++)
                {
                    var members = Enumerable.Range(g * width, width).Select(i => perm[i]).ToArray();
                    var min = members.Min(i => w[r * columns + i]);
                    var max = members.Max(i => w[r * columns + i]);
                    float scale;
                    int zero;
                    if (format.Method == Int4Method.Awq)
                    {
                        scale = (float)(Half)(Math.Max(max - min, 1e-5f) / 15f);
                        zero = Math.Clamp(-(int)MathF.Round(min / scale, MidpointRounding.ToEven), 0, 15);
                    }
                    else
                    {
                        min = Math.Min(min, 0f);
                        max = Math.Max(max, 0f);
                        if (format.Symmetric)
                        {
                            max = Math.Max(max, -min);
                            min = -max;
                        }
                        if (min == 0f && max == 0f) (min, max) = (-1f, 1f);
                        scale = (float)(Half)((max - min) / 15f);
                        zero = format.Symmetric ? 8 : Math.Clamp((int)MathF.Round(-min / scale, MidpointRounding.ToEven), 0, 15);
                    }
                    layer.S[g, r] = (Half)scale;
                    layer.Z[g, r] = (byte)((zero - format.ZeroOffset) & 0xF);
                    foreach (var i in members)
                        layer.Q[r, i] = (byte)Math.Clamp((int)MathF.Round(w[r * columns + i] / scale, MidpointRounding.ToEven) + zero, 0, 15);
                }
            return layer;
        }

        /// <summary>w = (q − z)·s from the stored integers, z = stored zero + the format's offset (GPTQ v1's + 1).</summary>
        public float[] Dequantize(Int4Checkpoint format)
        {
            var w = new float[Rows * Columns];
            for (var r = 0; r < Rows; r++)
                for (var i = 0; i < Columns; i++)
                {
                    var g = GroupOf[i];
                    w[r * Columns + i] = (Q[r, i] - (Z[g, r] + format.ZeroOffset)) * (float)S[g, r];
                }
            return w;
        }

        public void AddTo(SafetensorsWriter writer, string prefix, Int4Checkpoint format)
        {
            var awq = format.Method == Int4Method.Awq;
            // AWQ: qweight [in, out/8], nibbles along the output in AutoAWQ's order. GPTQ: [in/8, out], along the input in order.
            var qweight = awq
                ? Pack(Columns, Rows / 8, (k, c, i) => Q[8 * c + AwqPackOrder[i], k])
                : Pack(Columns / 8, Rows, (k, c, i) => Q[c, 8 * k + i]);
            var qzeros = Pack(Groups, Rows / 8, (g, c, i) => Z[g, 8 * c + (awq ? AwqPackOrder[i] : i)]);
            writer.AddTensor(prefix + ".qweight", GgmlType.I32, [awq ? Columns : Columns / 8, awq ? Rows / 8 : Rows], qweight);
            writer.AddTensor(prefix + ".qzeros", GgmlType.I32, [Groups, Rows / 8], qzeros);
            var scales = new byte[Groups * Rows * 2];
            for (var g = 0; g < Groups; g++)
                for (var r = 0; r < Rows; r++)
                    BinaryPrimitives.WriteHalfLittleEndian(scales.AsSpan((g * Rows + r) * 2), S[g, r]);
            writer.AddTensor(prefix + ".scales", GgmlType.F16, [Groups, Rows], scales);
            if (awq) return;
            var gIdx = new byte[Columns * 4];
            for (var i = 0; i < Columns; i++) BinaryPrimitives.WriteInt32LittleEndian(gIdx.AsSpan(i * 4), GroupOf[i]);
            writer.AddTensor(prefix + ".g_idx", GgmlType.I32, [Columns], gIdx);
        }

        /// <summary>An int32 [outer, inner] tensor whose word (o, c) holds nibble(o, c, i) at bits 4i.</summary>
        private static byte[] Pack(int outer, int inner, Func<int, int, int, byte> nibble)
        {
            var bytes = new byte[outer * inner * 4];
            for (var o = 0; o < outer; o++)
                for (var c = 0; c < inner; c++)
                {
                    uint word = 0;
                    for (var i = 0; i < 8; i++) word |= (uint)(nibble(o, c, i) & 0xF) << (4 * i);
                    BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan((o * inner + c) * 4), word);
                }
            return bytes;
        }
    }
}

/// <summary>How <see cref="SyntheticInt4"/> writes a checkpoint.</summary>
public sealed record Int4WriteOptions
{
    public Int4Method Method { get; init; } = Int4Method.Awq;

    /// <summary>Inputs per group (a multiple of 32); 0 for the configs' −1, one group per row.</summary>
    public int GroupSize { get; init; } = 32;

    /// <summary>GPTQ only: symmetric (zero points 8).</summary>
    public bool? Symmetric { get; init; }

    /// <summary>GPTQ only: act order, with inputs assigned to groups in a seeded random order through g_idx (desc_act true).</summary>
    public bool ActOrder { get; init; }

    /// <summary>GPTQ only: checkpoint_format gptq_v2 (zero points stored as they are) instead of v1 (stored minus one).</summary>
    public bool GptqV2 { get; init; }

    /// <summary>Where to write the same model dequantized to F32 (the test reference); null for none.</summary>
    public string? DequantizedFolder { get; init; }

    /// <summary>The quantization_config this writes.</summary>
    public Int4Checkpoint Format => new()
    {
        Method = Method,
        GroupSize = GroupSize,
        ZeroOffset = Method == Int4Method.Gptq && !GptqV2 ? 1 : 0,
        DescAct = ActOrder,
        Symmetric = Method == Int4Method.Awq ? false : Symmetric ?? true,
    };
}
