using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Formats;

public class GgufReaderTests
{
    [FixtureFact]
    public void FixtureModelMetadataMatchesWhatLlamaCppReported()
    {
        // llama.cpp's print_info on this file: arch llama, n_embd 64, n_layer 5, n_head 8, n_head_kv 4.
        using var file = GgufFile.Open(Fixtures.PathOf("model-260k", "stories260K-f32.gguf"));
        Assert.Equal(3u, file.Version);
        Assert.Equal("llama", file.GetString("general.architecture"));
        Assert.Equal(64, file.GetInteger("llama.embedding_length"));
        Assert.Equal(5, file.GetInteger("llama.block_count"));
        Assert.Equal(8, file.GetInteger("llama.attention.head_count"));
        Assert.Equal(4, file.GetInteger("llama.attention.head_count_kv"));
        Assert.Equal(512, file.GetArrayOrNull<string>("tokenizer.ggml.tokens")!.Length);
    }

    [FixtureFact]
    public void FixtureTensorsHaveGgufShapesAndLieInsideTheFile()
    {
        using var file = GgufFile.Open(Fixtures.PathOf("model-260k", "stories260K-f32.gguf"));
        var embedding = file.GetTensor("token_embd.weight");
        Assert.Equal(GgmlType.F32, embedding.Type);
        Assert.Equal(new long[] { 64, 512 }, embedding.Dimensions); // innermost first
        var wk = file.GetTensor("blk.0.attn_k.weight");
        Assert.Equal(new long[] { 64, 32 }, wk.Dimensions);
        Assert.True(file.TryGetTensor("output.weight", out _));
        Assert.All(file.Tensors, t => Assert.True(t.FileOffset + t.ByteSize <= new FileInfo(file.Path).Length));
        Assert.Equal(0, file.DataOffset % file.Alignment);
    }

    [FixtureFact]
    public void FileWithoutOutputHeadHasNoOutputTensor()
    {
        using var file = GgufFile.Open(Fixtures.PathOf("model-260k", "stories260K-f32-no-output.gguf"));
        Assert.False(file.TryGetTensor("output.weight", out _));
    }

    [Fact]
    public void MissingTensorErrorNamesFileAndTensor()
    {
        var path = GgufTestFiles.Write(new GgufWriter().Add("general.architecture", "llama"));
        using var file = GgufFile.Open(path);
        var e = Assert.Throws<ModelFormatException>(() => file.GetTensor("output.weight"));
        Assert.Contains(Path.GetFileName(path), e.Message);
        Assert.Contains("output.weight", e.Message);
    }

    [Fact]
    public void MetadataOfTheWrongTypeIsReportedWithItsValue()
    {
        var path = GgufTestFiles.Write(new GgufWriter().Add("llama.block_count", "five"));
        using var file = GgufFile.Open(path);
        var e = Assert.Throws<ModelFormatException>(() => file.GetInteger("llama.block_count"));
        Assert.Contains("llama.block_count", e.Message);
        Assert.Contains("five", e.Message);
    }
}
