using System.Security.Cryptography;
using System.Text.Json;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Model.Reference;
using Bulwark.Engine.Synthesis;
using Bulwark.Engine.Tokenizers;
using Bulwark.Engine.Tokenizers.Loading;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Synthesis;

public class SyntheticModelTests
{
    private static readonly SyntheticModelSpec Small = new()
    {
        Layers = 2, Dim = 64, Heads = 4, KvHeads = 2, FeedForward = 96, Vocab = 300, Context = 64, Seed = 7,
    };

    private static string Sha256(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    [Theory]
    [InlineData("llama", GgmlType.F32)]
    [InlineData("qwen2", GgmlType.Q8_0)]
    [InlineData("qwen3", GgmlType.Q4_0)]
    [InlineData("llama", GgmlType.BF16)]
    public void TheSameSpecGivesTheSameBytesAndAnotherSeedDifferentOnes(string arch, GgmlType type)
    {
        var dir = Fixtures.NewTempDirectory();
        var spec = Small with { Architecture = arch, DType = type };
        SyntheticModel.WriteGguf(spec, Path.Combine(dir, "a.gguf"));
        SyntheticModel.WriteGguf(spec, Path.Combine(dir, "b.gguf"));
        SyntheticModel.WriteGguf(spec with { Seed = 8 }, Path.Combine(dir, "c.gguf"));
        Assert.Equal(Sha256(Path.Combine(dir, "a.gguf")), Sha256(Path.Combine(dir, "b.gguf")));
        Assert.NotEqual(Sha256(Path.Combine(dir, "a.gguf")), Sha256(Path.Combine(dir, "c.gguf")));
        Directory.Delete(dir, true);
    }

    [Fact]
    public void SafetensorsFoldersAreDeterministicToo()
    {
        var dir = Fixtures.NewTempDirectory();
        SyntheticModel.WriteSafetensors(Small with { DType = GgmlType.F16 }, Path.Combine(dir, "a"));
        SyntheticModel.WriteSafetensors(Small with { DType = GgmlType.F16 }, Path.Combine(dir, "b"));
        foreach (var file in new[] { "model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json" })
            Assert.Equal(Sha256(Path.Combine(dir, "a", file)), Sha256(Path.Combine(dir, "b", file)));
        Directory.Delete(dir, true);
    }

    [Theory]
    [InlineData("llama", false, false, false)]
    [InlineData("qwen2", true, true, false)]
    [InlineData("qwen3", false, false, true)]
    public void GgufLoadsWithTheSpecsShapeAndArchitectureSwitches(string arch, bool tied, bool biases, bool qkNorm)
    {
        var dir = Fixtures.NewTempDirectory();
        var path = Path.Combine(dir, "m.gguf");
        var spec = Small with { Architecture = arch, TiedOutput = tied, Heads = 8, KvHeads = 1, ChatTemplate = SyntheticModel.ChatMlTemplate };
        SyntheticModel.WriteGguf(spec, path);
        using (var model = GgufModelLoader.Load(path))
        {
            var c = model.Config;
            Assert.Equal((64, 2, 8, 1, 8, 96, 300, 64), (c.EmbeddingLength, c.LayerCount, c.HeadCount, c.KeyValueHeadCount, c.HeadDim, c.FeedForwardLength, c.VocabularySize, c.ContextLength));
            Assert.Equal((tied, biases, qkNorm), (c.TiedOutputHead, c.HasQkvBias, c.HasQkNorm));
            Assert.Equal(biases, model.Weights.Layers[0].QueryBias is not null);
            Assert.Equal(qkNorm, model.Weights.Layers[0].QueryNorm is not null);
        }
        using (var gguf = GgufFile.Open(path))
        {
            Assert.Equal(arch, gguf.GetString("general.architecture"));
            Assert.Equal(SyntheticModel.ChatMlTemplate, gguf.GetString("tokenizer.chat_template"));
            Assert.Equal("gpt2", gguf.GetString("tokenizer.ggml.model"));
            Assert.Equal(0, gguf.GetInteger("general.file_type"));
        }
        Directory.Delete(dir, true);
    }

    [Fact]
    public void QuantizedFilesKeepNormsInF32AndMatricesInTheDType()
    {
        var dir = Fixtures.NewTempDirectory();
        var path = Path.Combine(dir, "m.gguf");
        SyntheticModel.WriteGguf(Small with { Architecture = "qwen2", DType = GgmlType.Q4_0 }, path);
        using var gguf = GgufFile.Open(path);
        Assert.Equal(2, gguf.GetInteger("general.file_type"));
        foreach (var t in gguf.Tensors)
            Assert.Equal(t.Dimensions.Length == 2 ? GgmlType.Q4_0 : GgmlType.F32, t.Type);
        Assert.Contains(gguf.Tensors, t => t.Name == "blk.1.attn_v.bias");
        gguf.Dispose();
        Directory.Delete(dir, true);
    }

    [Fact]
    public void LogitsAreFiniteSpreadAndGreedyChoicesHaveMargins()
    {
        var dir = Fixtures.NewTempDirectory();
        var path = Path.Combine(dir, "m.gguf");
        SyntheticModel.WriteGguf(Small with { Layers = 4 }, path);
        using var model = GgufModelLoader.Load(path);
        using var session = new LlamaSession(model);
        var margins = new List<float>();
        var argmaxes = new HashSet<int>();
        for (var pos = 0; pos < 32; pos++)
        {
            var logits = session.Forward((pos * 37 + 11) % 297, pos).ToArray();
            Assert.All(logits, v => Assert.True(float.IsFinite(v)));
            var mean = logits.Average();
            var deviation = Math.Sqrt(logits.Select(v => (v - mean) * (v - mean)).Average());
            Assert.InRange(deviation, 1.0, 10.0);
            var sorted = logits.OrderDescending().ToArray();
            margins.Add(sorted[0] - sorted[1]);
            argmaxes.Add(Array.IndexOf(logits, sorted[0]));
        }
        // Not degenerate: the prediction depends on the input, and the median top-2 gap is far above float noise.
        Assert.True(argmaxes.Count >= 8, $"only {argmaxes.Count} distinct greedy tokens over 32 positions");
        Assert.True(margins.Order().ElementAt(16) > 0.05f, $"median top-2 margin {margins.Order().ElementAt(16)}");
        Directory.Delete(dir, true);
    }

    [Fact]
    public void VocabularyHasTheGpt2BytesItsFirstMergesAndTheChatSpecials()
    {
        var definition = SyntheticVocabulary.Create(300);
        Assert.Equal(300, definition.Tokens.Count);
        Assert.Equal(["<|endoftext|>", "<|im_start|>", "<|im_end|>"], definition.Tokens.Skip(297));
        Assert.All(definition.Types.Skip(297), t => Assert.Equal(TokenType.Control, t));
        Assert.Equal((297, 299, 299), (definition.Special.Bos, definition.Special.Eos, definition.Special.EndOfTurn));
        Assert.Equal("Ġt", definition.Tokens[256]); // GPT-2's first merge
        Assert.Contains(("Ġ", "t"), definition.Merges!);
        var tokenizer = TokenizerFactory.Create(definition);
        var ids = tokenizer.Encode("the cat sat on the mat", addSpecial: false);
        Assert.Equal("the cat sat on the mat", tokenizer.Decode(ids));
        Assert.True(ids.Length < "the cat sat on the mat".Length, "merges shorten common text");
        Assert.Equal([298], tokenizer.Encode("<|im_start|>", addSpecial: false, parseSpecial: true));
    }

    [Fact]
    public void GgufAndHuggingFaceTokenizersAgree()
    {
        var dir = Fixtures.NewTempDirectory();
        var spec = Small with { Vocab = 1000, ChatTemplate = SyntheticModel.ChatMlTemplate };
        SyntheticModel.WriteGguf(spec, Path.Combine(dir, "m.gguf"));
        SyntheticModel.WriteSafetensors(spec, Path.Combine(dir, "hf"));
        var gguf = TokenizerLoader.FromGguf(Path.Combine(dir, "m.gguf"));
        var hf = TokenizerLoader.FromPath(Path.Combine(dir, "hf"));
        foreach (var text in new[] { "Once upon a time, there was a 123 dog.", "  spaces\tand\nnewlines ", "héllo wörld 你好 🙂", "<|im_start|>user\nhi<|im_end|>" })
        {
            Assert.Equal(gguf.Encode(text, parseSpecial: true), hf.Encode(text, parseSpecial: true));
            Assert.Equal(text, gguf.Decode(gguf.Encode(text, parseSpecial: true), renderSpecial: true));
        }
        Assert.Equal((gguf.Special.Bos, gguf.Special.Eos), (hf.Special.Bos, hf.Special.Eos));
        Directory.Delete(dir, true);
    }

    [Fact]
    public void SafetensorsHoldsTheSameWeightsWithLlamaQkRowsInRotateHalfOrder()
    {
        var dir = Fixtures.NewTempDirectory();
        var spec = Small with { Heads = 4, KvHeads = 2 };
        SyntheticModel.WriteGguf(spec, Path.Combine(dir, "m.gguf"));
        SyntheticModel.WriteSafetensors(spec, Path.Combine(dir, "hf"));
        var tensors = ReadSafetensors(Path.Combine(dir, "hf", "model.safetensors"));
        using var gguf = GgufFile.Open(Path.Combine(dir, "m.gguf"));
        Assert.Equal(gguf.Tensors.Count, tensors.Count);
        foreach (var info in gguf.Tensors)
        {
            var (shape, hfValues) = tensors[SyntheticModel.HuggingFaceName(info.Name)];
            Assert.Equal(info.Dimensions.Reverse(), shape);
            var ours = new float[hfValues.Length];
            Bulwark.Engine.Kernels.Reference.Dequantize.F32(gguf.TensorBytes(info), ours);
            if (info.Name.EndsWith("attn_k.weight"))
            {
                // GGUF row 2i+j of a head is HF row j*hd/2 + i (head dim 16, kv head 1, i = 3, j = 1).
                var hd = 16;
                Assert.Equal(ours.AsSpan((hd + 2 * 3 + 1) * 64, 64).ToArray(), hfValues.AsSpan((hd + hd / 2 + 3) * 64, 64).ToArray());
                Assert.NotEqual(ours, hfValues);
                ours = RopeRowOrder.ToRotateHalf(ours, 2, hd, 64);
            }
            else if (info.Name.EndsWith("attn_q.weight"))
            {
                ours = RopeRowOrder.ToRotateHalf(ours, 4, 16, 64);
            }
            Assert.Equal(ours, hfValues);
        }
        using var config = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "hf", "config.json")));
        Assert.Equal(64, config.RootElement.GetProperty("hidden_size").GetInt32());
        Assert.Equal("llama", config.RootElement.GetProperty("model_type").GetString());
        Directory.Delete(dir, true);
    }

    [Fact]
    public void RopeRowOrderConversionsAreInverse()
    {
        var rows = Enumerable.Range(0, 3 * 8 * 5).Select(i => (float)i).ToArray();
        var adjacent = RopeRowOrder.ToAdjacentPairs(rows, 3, 8, 5);
        Assert.Equal(rows, RopeRowOrder.ToRotateHalf(adjacent, 3, 8, 5));
        // Head 0: HF rows 0..3 are the first halves, 4..7 the second; GGUF interleaves them.
        Assert.Equal(new float[] { 0, 20, 5, 25 }, new[] { adjacent[0], adjacent[5], adjacent[10], adjacent[15] });
    }

    [Fact]
    public void QuantizedSafetensorsAreRefused()
    {
        var error = Assert.Throws<ArgumentException>(() => SyntheticModel.WriteSafetensors(Small with { DType = GgmlType.Q8_0 }, Fixtures.NewTempDirectory()));
        Assert.Contains("Q8_0", error.Message);
    }

    public static TheoryData<string, SyntheticModelSpec> InvalidSpecs => new()
    {
        { "architecture", Small with { Architecture = "gpt2" } },
        { "layers", Small with { Layers = 0 } },
        { "dim", Small with { Dim = 63 } },
        { "kv-heads", Small with { KvHeads = 3 } },
        { "kv-heads", Small with { KvHeads = 8 } },
        { "head dim", Small with { Dim = 36, Heads = 4 } },
        { "vocab", Small with { Vocab = 258 } },
        { "vocab", Small with { Vocab = SyntheticVocabulary.MaximumSize + 1 } },
        { "ff", Small with { FeedForward = 100, DType = GgmlType.Q8_0 } },
        { "dim", Small with { Dim = 48, Heads = 4, DType = GgmlType.Q4_0 } },
        { "dtype", Small with { DType = GgmlType.Q4_K } },
        { "ctx", Small with { Context = 0 } },
    };

    [Theory]
    [MemberData(nameof(InvalidSpecs))]
    public void InvalidSpecsAreRefusedNamingTheField(string field, SyntheticModelSpec spec)
    {
        var error = Assert.Throws<ArgumentException>(spec.Validate);
        Assert.Contains(field, error.Message);
    }

    [Fact]
    public void VocabularyLimitsAreAcceptedAtTheEdges()
    {
        Assert.Equal(259, SyntheticVocabulary.Create(259).Tokens.Count);
        Assert.Equal(SyntheticVocabulary.MaximumSize, SyntheticVocabulary.Create(SyntheticVocabulary.MaximumSize).Tokens.Count);
        (Small with { Vocab = 259, FeedForward = 100 }).Validate();
    }

    [Fact]
    public void DemoIsAValidChatModel()
    {
        var demo = SyntheticModel.Demo;
        demo.Validate();
        Assert.NotNull(demo.ChatTemplate);
        Assert.True(demo.Vocab >= 2048);
    }

    /// <summary>A minimal independent safetensors reader (header JSON + little-endian F32 payload).</summary>
    private static Dictionary<string, (long[] Shape, float[] Values)> ReadSafetensors(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var headerLength = (int)BitConverter.ToUInt64(bytes, 0);
        Assert.Equal(0, (8 + headerLength) % 8);
        using var header = JsonDocument.Parse(bytes.AsMemory(8, headerLength));
        var result = new Dictionary<string, (long[], float[])>();
        foreach (var entry in header.RootElement.EnumerateObject())
        {
            if (entry.Name == "__metadata__") continue;
            Assert.Equal("F32", entry.Value.GetProperty("dtype").GetString());
            var shape = entry.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            var offsets = entry.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            var values = new float[(offsets[1] - offsets[0]) / 4];
            Buffer.BlockCopy(bytes, 8 + headerLength + offsets[0], values, 0, offsets[1] - offsets[0]);
            result[entry.Name] = (shape, values);
        }
        return result;
    }
}
