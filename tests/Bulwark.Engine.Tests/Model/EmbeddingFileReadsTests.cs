using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Kernels.Cpu;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Model.Weights;
using Bulwark.Engine.Synthesis;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Model;

/// <summary>The token embedding is looked up with positioned reads of the file, not through its mapping.</summary>
public unsafe class EmbeddingFileReadsTests
{
    private static string Write(SyntheticModelSpec spec, string name = "m.gguf")
    {
        var path = Path.Combine(Fixtures.NewTempDirectory("embedding-reads"), name);
        SyntheticModel.WriteGguf(spec, path);
        return path;
    }

    [Theory]
    [InlineData(GgmlType.F32, false)]
    [InlineData(GgmlType.Q8_0, false)]
    [InlineData(GgmlType.Q4_0, true)]
    public void AMappedModelReadsItsEmbeddingRowsFromTheFileAndGivesTheSameRows(GgmlType type, bool tied)
    {
        var path = Write(new SyntheticModelSpec { DType = type, TiedOutput = tied, Seed = 3 });
        using var model = ModelLoader.Load(path);
        var embedding = model.Weights.TokenEmbedding;
        // A tied head multiplies by the same rows: only once it is packed are they free to be read from the file.
        var expected = !tied || (embedding.IsPacked && PackedMatMul.HasFastPath(KernelIsa.Active));
        Assert.Equal(expected, embedding.ReadsRowsFromFile);

        using var gguf = GgufFile.Open(path);
        Assert.True(gguf.TryGetTensor("token_embd.weight", out var info));
        var stored = gguf.TensorBytes(info);
        var rowBytes = (int)embedding.RowBytes;
        var fromFile = new float[embedding.Columns];
        var reference = new float[embedding.Columns];
        var row = new byte[rowBytes];
        foreach (var id in new[] { 0, 1, 255, embedding.Rows - 1 })
        {
            embedding.DequantizeRow(id, fromFile);
            Bulwark.Engine.Kernels.Reference.Dequantize.Row(type, stored.Slice(id * rowBytes, rowBytes), reference);
            Assert.Equal(reference, fromFile);
            embedding.StoredRow(id, row);
            Assert.Equal(stored.Slice(id * rowBytes, rowBytes).ToArray(), row);
        }
    }

    [Fact]
    public void AnEmbeddingQuantizedAtLoadKeepsItsOwnCopy()
    {
        var path = Write(new SyntheticModelSpec { DType = GgmlType.F32, Seed = 4 });
        using var model = ModelLoader.Load(path, new ModelLoadOptions { QuantizeTo = GgmlType.Q8_0 });
        Assert.False(model.Weights.TokenEmbedding.ReadsRowsFromFile);
    }

    [Fact]
    public void RowsComeFromTheFileNotFromTheMemoryGiven()
    {
        // A matrix over memory holding other bytes than the file: once reading the file, lookups see the file.
        const int rows = 4, columns = 8;
        var values = Enumerable.Range(0, rows * columns).Select(i => (float)i).ToArray();
        var path = Path.Combine(Fixtures.NewTempDirectory("embedding-reads"), "rows.bin");
        var header = new byte[100];
        File.WriteAllBytes(path, header.Concat(values.SelectMany(BitConverter.GetBytes)).ToArray());
        var other = (float*)System.Runtime.InteropServices.NativeMemory.AllocZeroed(rows * columns * sizeof(float));
        try
        {
            using var matrix = new WeightMatrix("t", GgmlType.F32, rows, columns, (byte*)other);
            matrix.ReadRowsFromFile(path, header.Length);
            var row = new float[columns];
            matrix.DequantizeRow(2, row);
            Assert.Equal(values.AsSpan(2 * columns, columns).ToArray(), row);
        }
        finally
        {
            System.Runtime.InteropServices.NativeMemory.Free(other);
        }
    }

    [Fact]
    public void AFileTooShortForTheRowsIsRefused()
    {
        var path = Path.Combine(Fixtures.NewTempDirectory("embedding-reads"), "short.bin");
        File.WriteAllBytes(path, new byte[4 * 8 * sizeof(float) - 1]);
        var memory = new float[4 * 8];
        fixed (float* p = memory)
        {
            using var matrix = new WeightMatrix("t", GgmlType.F32, 4, 8, (byte*)p);
            var e = Assert.Throws<InvalidDataException>(() => matrix.ReadRowsFromFile(path, 0));
            Assert.Contains("ends before", e.Message);
            Assert.False(matrix.ReadsRowsFromFile);
        }
    }
}
