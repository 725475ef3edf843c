using Bulwark.Engine.Conversion;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Model.Reference;
using Bulwark.Engine.Synthesis;
using Bulwark.Engine.Tokenizers.Loading;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Conversion;

/// <summary>
/// The synthetic generator writes one model both as a Hugging Face folder and as GGUF (in
/// llama.cpp's layout): converting the folder must give the generator's GGUF tensors byte for
/// byte (llama q/k rows back in adjacent pairs, norms as F32), its tokenizer and chat template,
/// and so the same logits.
/// </summary>
public sealed class HuggingFaceToGgufTests
{
    private static SyntheticModelSpec Spec(string arch, GgmlType type, bool tied) => new()
    {
        Architecture = arch, DType = type, TiedOutput = tied, Layers = 2, Dim = 64, Heads = 4, KvHeads = 2, FeedForward = 128, Vocab = 320, Context = 64, Seed = 21,
        ChatTemplate = SyntheticModel.ChatMlTemplate,
    };

    /// <summary>Architecture, tied head, and a RoPE scaling (llama3: llama.cpp's converter writes it as the rope_freqs.weight tensor).</summary>
    public static TheoryData<string, bool, string> Shapes() => new()
    {
        { "llama", false, "none" }, { "llama", true, "none" }, { "qwen2", false, "none" }, { "qwen3", true, "none" }, { "llama", true, "llama3" }, { "smollm3", false, "none" }, { "phi3", false, "none" }, { "phi3", true, "longrope" },
        { "gemma2", true, "none" }, { "gemma3", false, "none" },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void AConvertedFolderIsTheGeneratorsGguf(string arch, bool tied, string rope)
    {
        var dir = Fixtures.NewTempDirectory("hf-to-gguf");
        var spec = Spec(arch, GgmlType.F32, tied) with
        {
            RopeTheta = rope == "llama3" ? 500000f : 10000f,
            RopeScaling = rope switch
            {
                "llama3" => new RopeScaling(RopeScalingKind.Llama3, 8f, 1f, 4f, 16),
                "longrope" => SyntheticRope.LongRope(16, 16, 4f),
                _ => RopeScaling.None,
            },
        };
        SyntheticModel.WriteSafetensors(spec, Path.Combine(dir, "hf"));
        SyntheticModel.WriteGguf(spec, Path.Combine(dir, "expected.gguf"));
        HuggingFaceToGguf.Convert(Path.Combine(dir, "hf"), Path.Combine(dir, "converted.gguf"));

        using (var expected = GgufFile.Open(Path.Combine(dir, "expected.gguf")))
        using (var converted = GgufFile.Open(Path.Combine(dir, "converted.gguf")))
        {
            Assert.Equal(expected.Tensors.Select(t => t.Name).Order(), converted.Tensors.Select(t => t.Name).Order());
            foreach (var t in expected.Tensors)
            {
                Assert.True(converted.TryGetTensor(t.Name, out var c), t.Name);
                Assert.Equal(t.Type, c.Type);
                Assert.Equal(t.Dimensions, c.Dimensions);
                Assert.True(expected.TensorBytes(t).SequenceEqual(converted.TensorBytes(c)), $"{arch}: {t.Name} differs");
            }
            Assert.Equal(expected.GetString("tokenizer.chat_template"), converted.GetString("tokenizer.chat_template"));
            Assert.Equal(GgufModelLoader.ReadConfig(expected), GgufModelLoader.ReadConfig(converted));
        }

        var text = "Hello there, 12345 tokens!";
        Assert.Equal(TokenizerLoader.FromGguf(Path.Combine(dir, "expected.gguf")).Encode(text), TokenizerLoader.FromGguf(Path.Combine(dir, "converted.gguf")).Encode(text));
        using var a = ModelLoader.Load(Path.Combine(dir, "expected.gguf"));
        using var b = ModelLoader.Load(Path.Combine(dir, "converted.gguf"));
        using var sa = new LlamaSession(a, 8);
        using var sb = new LlamaSession(b, 8);
        for (var pos = 0; pos < 8; pos++)
            Assert.Equal(sa.Forward(pos * 31 % spec.Vocab, pos).ToArray(), sb.Forward(pos * 31 % spec.Vocab, pos).ToArray());
    }

    [Theory]
    [InlineData("gemma2", "query_pre_attn_scalar", "256", "query_pre_attn_scalar: gives a query scale of 0.0625; a GGUF gemma2 is scaled by llama.cpp's 0.25")]
    [InlineData("gemma2", "tie_word_embeddings", "false", "tie_word_embeddings: false cannot be written as GGUF")]
    [InlineData("gemma3", "rope_local_base_freq", "20000", "rope_local_base_freq: 20000 cannot be written as GGUF")]
    [InlineData("gemma2", "layer_types", "[\"full_attention\", \"full_attention\"]", "layer_types: layer 0 breaks the pattern")]
    public void GemmaSettingsAGgufCannotCarryAreRefused(string arch, string key, string json, string expected)
    {
        var dir = Fixtures.NewTempDirectory("hf-to-gguf");
        var folder = Path.Combine(dir, "hf");
        SyntheticModel.WriteSafetensors(Spec(arch, GgmlType.F32, tied: false), folder);
        var configPath = Path.Combine(folder, "config.json");
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        config[key] = System.Text.Json.Nodes.JsonNode.Parse(json);
        File.WriteAllText(configPath, config.ToJsonString());
        var e = Assert.Throws<ModelFormatException>(() => HuggingFaceToGguf.Convert(folder, Path.Combine(dir, "x.gguf")));
        Assert.Contains(expected, e.Message);
        Assert.False(File.Exists(Path.Combine(dir, "x.gguf")));
    }

    [Fact]
    public void ASmolLm3IntervalOtherThanLlamaCppsFourIsRefused()
    {
        var dir = Fixtures.NewTempDirectory("hf-to-gguf");
        var hf = Path.Combine(dir, "hf");
        SyntheticModel.WriteSafetensors(Spec("smollm3", GgmlType.F32, false), hf);
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(hf, "config.json")))!;
        config["no_rope_layer_interval"] = 2;
        config["no_rope_layers"] = new System.Text.Json.Nodes.JsonArray(1, 0);
        File.WriteAllText(Path.Combine(hf, "config.json"), config.ToJsonString());
        using (var model = ModelLoader.Load(hf)) Assert.Equal(2, model.Config.NoRopeLayerStep);
        var e = Assert.Throws<ModelFormatException>(() => HuggingFaceToGguf.Convert(hf, Path.Combine(dir, "x.gguf")));
        Assert.Contains("no_rope_layer_interval: 2 cannot be written as GGUF (llama.cpp always skips RoPE in every 4th layer)", e.Message);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void AwqAndGptqFoldersAreRefusedNamingQuantizationConfig()
    {
        var dir = Fixtures.NewTempDirectory("hf-to-gguf");
        var hf = Path.Combine(dir, "hf");
        SyntheticInt4.Write(Spec("llama", GgmlType.F32, false), hf, new Int4WriteOptions { Method = Int4Method.Gptq, GroupSize = 32 });
        var e = Assert.Throws<ModelFormatException>(() => HuggingFaceToGguf.Convert(hf, Path.Combine(dir, "x.gguf")));
        Assert.Contains("quantization_config: GPTQ 4-bit (group 32) checkpoints are not converted to GGUF", e.Message);
        Assert.False(File.Exists(Path.Combine(dir, "x.gguf")));
        Directory.Delete(dir, true);
    }

    [Fact]
    public void Bf16MatricesKeepTheirTypeAndBytes()
    {
        var dir = Fixtures.NewTempDirectory("hf-to-gguf");
        var spec = Spec("llama", GgmlType.BF16, tied: false);
        SyntheticModel.WriteSafetensors(spec, Path.Combine(dir, "hf"));
        SyntheticModel.WriteGguf(spec, Path.Combine(dir, "expected.gguf"));
        HuggingFaceToGguf.Convert(Path.Combine(dir, "hf"), Path.Combine(dir, "converted.gguf"));
        using var expected = GgufFile.Open(Path.Combine(dir, "expected.gguf"));
        using var converted = GgufFile.Open(Path.Combine(dir, "converted.gguf"));
        foreach (var t in expected.Tensors.Where(t => t.Dimensions.Length == 2))
        {
            Assert.True(converted.TryGetTensor(t.Name, out var c), t.Name);
            Assert.Equal(GgmlType.BF16, c.Type);
            Assert.True(expected.TensorBytes(t).SequenceEqual(converted.TensorBytes(c)), t.Name);
        }
        // Norms become F32 (the folder's BF16 values, widened exactly).
        Assert.True(converted.TryGetTensor("output_norm.weight", out var norm));
        Assert.Equal(GgmlType.F32, norm.Type);
    }

    [Fact]
    public void AFolderWithoutATokenizerIsRefusedNamingTheFile()
    {
        var dir = Fixtures.NewTempDirectory("hf-to-gguf");
        SyntheticModel.WriteSafetensors(Spec("qwen2", GgmlType.F32, false), dir);
        File.Delete(Path.Combine(dir, "tokenizer.json"));
        var e = Assert.Throws<ModelFormatException>(() => HuggingFaceToGguf.Convert(dir, Path.Combine(dir, "out.gguf")));
        Assert.Contains("tokenizer.json", e.Message);
        Assert.False(File.Exists(Path.Combine(dir, "out.gguf")));
    }

    [Fact]
    public void RowsMoveAsLlamaCppPermutes()
    {
        // head_dim 8: GGUF rows 0..7 of a head come from HF rows 0,4,1,5,2,6,3,7.
        Assert.Equal([0L, 4, 1, 5, 2, 6, 3, 7, 8, 12], Enumerable.Range(0, 10).Select(r => HuggingFaceToGguf.RotateHalfRowOf(r, 8)));
    }
}
