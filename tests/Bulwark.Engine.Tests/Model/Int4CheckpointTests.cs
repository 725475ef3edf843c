using System.Buffers.Binary;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Safetensors;
using Bulwark.Engine.Model;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Model.Reference;
using Bulwark.Engine.Model.Weights;
using Bulwark.Engine.Synthesis;
using Bulwark.Testing;
using Xunit.Abstractions;

namespace Bulwark.Engine.Tests.Model;

/// <summary>
/// AWQ and GPTQ 4-bit safetensors: written by <see cref="SyntheticInt4"/>, loaded and repacked into Q4_1 rows. The
/// repacked rows are checked against the stored integers unpacked here by the formats' definitions (a scalar twin
/// that shares no code with the loader), and the model's logits against the same weights dequantized to F32.
/// </summary>
public class Int4CheckpointTests(ITestOutputHelper output)
{
    private const int Positions = 32;

    public static TheoryData<string> Formats() => new(Cases.Keys.Order(StringComparer.Ordinal));

    private static readonly Dictionary<string, Int4WriteOptions> Cases = new()
    {
        ["awq-g32"] = new() { Method = Int4Method.Awq, GroupSize = 32 },
        ["awq-g64"] = new() { Method = Int4Method.Awq, GroupSize = 64 },
        ["awq-per-row"] = new() { Method = Int4Method.Awq, GroupSize = 0 },
        ["gptq-sym-g32"] = new() { Method = Int4Method.Gptq, GroupSize = 32 },
        ["gptq-asym-g64"] = new() { Method = Int4Method.Gptq, GroupSize = 64, Symmetric = false },
        ["gptq-v2-asym-g32"] = new() { Method = Int4Method.Gptq, GroupSize = 32, Symmetric = false, GptqV2 = true },
        ["gptq-act-order-g32"] = new() { Method = Int4Method.Gptq, GroupSize = 32, Symmetric = false, ActOrder = true },
        ["gptq-act-order-per-row"] = new() { Method = Int4Method.Gptq, GroupSize = 0, ActOrder = true },
    };

    private static readonly SyntheticModelSpec Spec = new() { Architecture = "llama", Layers = 2, Dim = 64, Heads = 4, KvHeads = 2, FeedForward = 128, Vocab = 512, Seed = 19 };

    /// <summary>Writes <paramref name="name"/>'s checkpoint and its F32 twin; returns (packed folder, twin folder).</summary>
    internal static (string Packed, string Twin) Write(string name, SyntheticModelSpec? spec = null)
    {
        var dir = Fixtures.NewTempDirectory();
        var twin = Path.Combine(dir, "f32");
        SyntheticInt4.Write(spec ?? Spec, Path.Combine(dir, name), Cases[name] with { DequantizedFolder = twin });
        return (Path.Combine(dir, name), twin);
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void RepackedRowsEqualTheStoredIntegersUnpackedByTheFormatsDefinition(string name)
    {
        var (folder, _) = Write(name);
        var options = Cases[name];
        using var model = ModelLoader.Load(folder);
        Assert.Equal(options.Format, model.Config.Int4);
        using var file = SafetensorsFile.Open(Path.Combine(folder, "model.safetensors"));
        var matrices = model.Weights.Layers.SelectMany(l => l.Matrices).ToList();
        Assert.Equal(Spec.Layers * 7, matrices.Count);
        var worst = 0.0;
        foreach (var m in matrices)
        {
            Assert.Equal(GgmlType.Q4_1, m.Type);
            Assert.EndsWith(".qweight", m.Name);
            Assert.Equal(options.ActOrder && options.GroupSize != 0, m.InputOrder is not null); // one group per row needs no order
            var (expected, zeroTimesScale) = Unpack(file, m.Name[..^".qweight".Length], m.Rows, m.Columns, options.Format);
            var row = new float[m.Columns];
            for (var r = 0; r < m.Rows; r++)
            {
                m.DequantizeRow(r, row);
                for (var i = 0; i < m.Columns; i++)
                {
                    // The one rounding of the repack: m = f16(−z·s), half an f16 ulp of z·s at most (2⁻¹¹ relative),
                    // plus float32 arithmetic on each side.
                    var bound = zeroTimesScale[r, i] * Math.Pow(2, -11) + 1e-6 * (Math.Abs(expected[r, i]) + zeroTimesScale[r, i]);
                    var error = Math.Abs(row[i] - expected[r, i]);
                    worst = Math.Max(worst, error / Math.Max(bound, 1e-30));
                    Assert.True(error <= bound, $"{name} {m.Name} [{r}, {i}]: repacked {row[i]}, format {expected[r, i]} (bound {bound})");
                }
            }
        }
        // Asymmetric zero points make −z·s inexact in f16 somewhere (symmetric z = 8 keeps it exact): the bound is exercised.
        if (!options.Format.Symmetric) Assert.True(worst > 0, "no value was off by the rounding of m");
    }

    /// <summary>
    /// w[row, input] = (q − z)·s from the file's tensors, as AutoAWQ's <c>unpack_awq</c> + reverse order and AutoGPTQ's
    /// dequantization read them; also |z·s| per value (the size of the repack's one rounding).
    /// </summary>
    private static (double[,] W, double[,] ZeroTimesScale) Unpack(SafetensorsFile file, string prefix, int rows, int columns, Int4Checkpoint format)
    {
        int[] Words(string suffix) => Ints(file.TensorBytes(file.GetTensor(prefix + suffix)));
        var qweight = Words(".qweight");
        var qzeros = Words(".qzeros");
        var scalesBytes = file.TensorBytes(file.GetTensor(prefix + ".scales"));
        var width = format.GroupSize == 0 ? columns : format.GroupSize;
        var q = new int[rows, columns];
        var z = new int[columns / width, rows];
        if (format.Method == Int4Method.Awq)
        {
            // Unpack each word's nibbles in bit order, then undo AutoAWQ's interleave [0, 2, 4, 6, 1, 3, 5, 7].
            int[] reverse = [0, 4, 1, 5, 2, 6, 3, 7];
            int[] Unpacked(int[] words, int row) =>
                Enumerable.Range(0, rows).Select(o => (words[row * (rows / 8) + o / 8] >> (4 * reverse[o % 8])) & 0xF).ToArray();
            for (var k = 0; k < columns; k++)
            {
                var values = Unpacked(qweight, k);
                for (var o = 0; o < rows; o++) q[o, k] = values[o];
            }
            for (var g = 0; g < columns / width; g++)
            {
                var values = Unpacked(qzeros, g);
                for (var o = 0; o < rows; o++) z[g, o] = values[o];
            }
        }
        else
        {
            for (var word = 0; word < columns / 8; word++)
                for (var o = 0; o < rows; o++)
                    for (var i = 0; i < 8; i++)
                        q[o, word * 8 + i] = (qweight[word * rows + o] >> (4 * i)) & 0xF;
            for (var g = 0; g < columns / width; g++)
                for (var c = 0; c < rows / 8; c++)
                    for (var i = 0; i < 8; i++)
                        z[g, c * 8 + i] = ((qzeros[g * (rows / 8) + c] >> (4 * i)) & 0xF) + format.ZeroOffset;
        }
        var gIdx = format.Method == Int4Method.Gptq ? Ints(file.TensorBytes(file.GetTensor(prefix + ".g_idx"))) : Enumerable.Range(0, columns).Select(i => i / width).ToArray();
        var w = new double[rows, columns];
        var zs = new double[rows, columns];
        for (var o = 0; o < rows; o++)
            for (var i = 0; i < columns; i++)
            {
                var g = gIdx[i];
                var s = (double)BinaryPrimitives.ReadHalfLittleEndian(scalesBytes[((g * rows + o) * 2)..]);
                w[o, i] = (q[o, i] - z[g, o]) * s;
                zs[o, i] = Math.Abs(z[g, o] * s);
            }
        return (w, zs);
    }

    private static int[] Ints(ReadOnlySpan<byte> bytes)
    {
        var values = new int[bytes.Length / 4];
        for (var i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadInt32LittleEndian(bytes[(i * 4)..]);
        return values;
    }

    [Fact]
    public void ActOrderMatricesGatherTheirInputForEveryTokenAndSharedMultipliesEqualSeparateOnes()
    {
        var (folder, _) = Write("gptq-act-order-g32");
        using var model = ModelLoader.Load(folder);
        var layer = model.Weights.Layers[0];
        Assert.NotNull(layer.Query.InputOrder);
        Assert.False(layer.Query.InputOrder.SequenceEqual(Enumerable.Range(0, layer.Query.Columns)));
        const int tokens = 3;
        var columns = layer.Query.Columns;
        var x = Enumerable.Range(0, tokens * columns).Select(i => MathF.Sin(i * 0.37f)).ToArray();
        var matrices = new[] { layer.Query, layer.Key, layer.Value };
        var shared = matrices.Select(m => new float[tokens * m.Rows]).ToArray();
        WeightMatrix.MatMulShared(x, tokens, layer.Query, shared[0], layer.Key, shared[1], layer.Value, shared[2]);
        var row = new float[columns];
        for (var m = 0; m < matrices.Length; m++)
        {
            var separate = new float[tokens * matrices[m].Rows];
            matrices[m].MatMul(x, separate, tokens);
            Assert.Equal(separate, shared[m]);
            for (var r = 0; r < matrices[m].Rows; r++)
            {
                matrices[m].DequantizeRow(r, row); // in input order
                for (var t = 0; t < tokens; t++)
                {
                    double expected = 0, magnitude = 0;
                    for (var i = 0; i < columns; i++)
                    {
                        expected += (double)row[i] * x[t * columns + i];
                        magnitude += Math.Abs((double)row[i] * x[t * columns + i]);
                    }
                    // Within the 8-bit activations' rounding (1/254 of a block's largest input per value at most).
                    Assert.True(Math.Abs(separate[t * matrices[m].Rows + r] - expected) <= 0.01 * magnitude + 1e-5,
                        $"{matrices[m].Name} token {t} row {r}: {separate[t * matrices[m].Rows + r]} vs {expected}");
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void LogitsMatchTheSameWeightsDequantizedAndRunInF32(string name)
    {
        var (folder, twin) = Write(name);
        using var packed = ModelLoader.Load(folder);
        using var reference = ModelLoader.Load(twin);
        Assert.Equal(GgmlType.F32, reference.Weights.Layers[0].Query.Type);
        var (cosine, error, agree, decided) = Compare(packed, reference, Positions);
        output.WriteLine($"{name}: worst cosine {cosine:0.000000}, worst error {error:0.0000} of the largest logit, greedy {agree}/{Positions} ({decided} decided by margin)");
        Assert.True(cosine >= 0.9995, $"{name}: worst cosine {cosine}");
        Assert.True(error <= 0.03, $"{name}: worst error {error} of the largest logit");
        Assert.True(agree >= Positions * 3 / 4 && decided >= Positions / 2, $"{name}: greedy ids agree at {agree}/{Positions}, {decided} decided");
    }

    /// <summary>Worst cosine, worst |difference| / max |logit| and greedy agreement over <paramref name="positions"/> positions.</summary>
    internal static (double Cosine, double Error, int Agree, int Decided) Compare(LlamaModel packed, LlamaModel reference, int positions)
    {
        using var a = new LlamaSession(packed, positions);
        using var b = new LlamaSession(reference, positions);
        double worstCosine = 1, worstError = 0;
        int agree = 0, decided = 0;
        for (var pos = 0; pos < positions; pos++)
        {
            var token = (pos * 37 + 5) % packed.Config.VocabularySize;
            var x = a.Forward(token, pos).ToArray();
            var y = b.Forward(token, pos).ToArray();
            double dot = 0, xx = 0, yy = 0, diff = 0;
            for (var v = 0; v < x.Length; v++)
            {
                dot += (double)x[v] * y[v];
                xx += (double)x[v] * x[v];
                yy += (double)y[v] * y[v];
                diff = Math.Max(diff, Math.Abs(x[v] - y[v]));
            }
            worstCosine = Math.Min(worstCosine, dot / Math.Sqrt(xx * yy));
            worstError = Math.Max(worstError, diff / y.Max(Math.Abs));
            // The kernels multiply 8-bit activations (as llama.cpp's do), so a near tie in the F32 reference may flip:
            // the greedy ids must agree wherever the reference's top two are further apart than twice the error.
            var sorted = y.OrderDescending().ToArray();
            if (sorted[0] - sorted[1] > 2 * diff)
            {
                decided++;
                Assert.True(Array.IndexOf(x, x.Max()) == Array.IndexOf(y, y.Max()), $"position {pos}: greedy ids differ with a margin of {sorted[0] - sorted[1]} (error {diff})");
            }
            if (Array.IndexOf(x, x.Max()) == Array.IndexOf(y, y.Max())) agree++;
        }
        return (worstCosine, worstError, agree, decided);
    }
}
