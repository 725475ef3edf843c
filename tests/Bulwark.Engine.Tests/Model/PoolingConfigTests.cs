using System.Text;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Synthesis;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Model;

/// <summary>
/// Where a model says it is an embedding model: GGUF <c>{arch}.pooling_type</c> (llama.cpp's enum) and
/// sentence-transformers' <c>1_Pooling/config.json</c>, as the synthetic generator writes them.
/// </summary>
public class PoolingConfigTests
{
    [Theory]
    [InlineData("llama", PoolingType.None)]
    [InlineData("llama", PoolingType.Mean)]
    [InlineData("qwen3", PoolingType.Last)]
    [InlineData("qwen2", PoolingType.Cls)]
    public void GgufAndSafetensorsCarryThePoolingTheSpecAskedFor(string arch, PoolingType pooling)
    {
        var dir = Fixtures.NewTempDirectory();
        var spec = new SyntheticModelSpec { Architecture = arch, Pooling = pooling };
        SyntheticModel.WriteGguf(spec, Path.Combine(dir, "m.gguf"));
        SyntheticModel.WriteSafetensors(spec, Path.Combine(dir, "hf"));
        using var gguf = ModelLoader.Load(Path.Combine(dir, "m.gguf"));
        using var hf = ModelLoader.Load(Path.Combine(dir, "hf"));
        Assert.Equal(pooling, gguf.Config.Pooling);
        Assert.Equal(pooling, hf.Config.Pooling);
        Assert.Equal(pooling != PoolingType.None, File.Exists(Path.Combine(dir, "hf", SentenceTransformersPooling.RelativePath)));
    }

    [Theory]
    [InlineData(4u, "4 (rank")]
    [InlineData(9u, "got 9")]
    public void GgufPoolingTypesTheDecoderCannotComputeAreRefusedByName(uint value, string expected)
    {
        var path = Path.Combine(Fixtures.NewTempDirectory(), "m.gguf");
        SyntheticModel.WriteGguf(new SyntheticModelSpec(), path);
        var rewritten = Path.Combine(Path.GetDirectoryName(path)!, "bad.gguf");
        RewriteWithPooling(path, rewritten, value);
        var e = Assert.Throws<ModelFormatException>(() => ModelLoader.Load(rewritten));
        Assert.Equal("llama.pooling_type", e.Field);
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData("""{"pooling_mode_mean_tokens": true}""", PoolingType.Mean)]
    [InlineData("""{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}""", PoolingType.Cls)]
    [InlineData("""{"pooling_mode_lasttoken": true, "include_prompt": true}""", PoolingType.Last)]
    public void SentenceTransformersPoolingModesAreRead(string json, PoolingType expected) =>
        Assert.Equal(expected, SentenceTransformersPooling.Parse(Encoding.UTF8.GetBytes(json), "config.json"));

    [Theory]
    [InlineData("""{"pooling_mode_max_tokens": true}""", "pooling_mode_max_tokens")]
    [InlineData("""{"pooling_mode_weightedmean_tokens": true}""", "pooling_mode_weightedmean_tokens")]
    [InlineData("""{"pooling_mode_mean_tokens": true, "pooling_mode_cls_token": true}""", "several pooling modes")]
    [InlineData("""{"pooling_mode_mean_tokens": false}""", "no pooling mode is true")]
    [InlineData("""{"pooling_mode_mean_tokens": "yes"}""", "must be true or false")]
    [InlineData("""[1]""", "must be a JSON object")]
    [InlineData("""{""", "not valid JSON")]
    public void PoolingConfigsTheEngineCannotHonourAreRefused(string json, string expected)
    {
        var e = Assert.Throws<ModelFormatException>(() => SentenceTransformersPooling.Parse(Encoding.UTF8.GetBytes(json), "config.json"));
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData("mean", PoolingType.Mean)]
    [InlineData("LAST", PoolingType.Last)]
    [InlineData("cls", PoolingType.Cls)]
    [InlineData("none", PoolingType.None)]
    public void PoolingNamesParse(string text, PoolingType expected)
    {
        Assert.True(PoolingTypeNames.TryParse(text, out var type));
        Assert.Equal(expected, type);
        Assert.False(PoolingTypeNames.TryParse("max", out _));
    }

    /// <summary>The same model with a pooling_type the generator would never write.</summary>
    private static void RewriteWithPooling(string source, string target, uint value)
    {
        using var file = Bulwark.Engine.Formats.Gguf.GgufFile.Open(source);
        var writer = new Bulwark.Engine.Formats.Gguf.GgufWriter();
        foreach (var (key, v) in file.MetadataInOrder) writer.Add(key, v);
        writer.Add("llama.pooling_type", value);
        foreach (var tensor in file.Tensors) writer.AddTensor(tensor.Name, tensor.Type, tensor.Dimensions, file.TensorBytes(tensor).ToArray());
        writer.WriteTo(target);
    }
}
