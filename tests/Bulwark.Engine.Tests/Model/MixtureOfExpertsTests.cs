using System.Text;
using Bulwark.Engine.Conversion;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Kernels.Reference;
using Bulwark.Engine.Model;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Model.Reference;
using Bulwark.Engine.Serving.Execution;
using Bulwark.Engine.Serving.Scheduling;
using Bulwark.Engine.Synthesis;
using Bulwark.Engine.Tests.Serving;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Model;

/// <summary>
/// Mixtral and Qwen3-MoE: the routing (softmax, top-k, renormalised), the grouped expert MLP held to its
/// per-token float32 twin for every weight type the generator writes, batched ≡ session, GGUF ≡ Hugging Face
/// ≡ converted, and every expert count, used count and expert tensor shape checked at load by name.
/// </summary>
public sealed class MixtureOfExpertsTests : IDisposable
{
    private readonly string _dir = Fixtures.NewTempDirectory("moe");

    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>A small Mixtral: 2 layers, 8 experts of which each token runs 2.</summary>
    public static SyntheticModelSpec Mixtral(GgmlType type = GgmlType.F32) => new()
    {
        Architecture = "llama", Layers = 2, Dim = 64, Heads = 4, KvHeads = 2, FeedForward = 64, Vocab = 320, Context = 128,
        DType = type, Experts = 8, ExpertsUsed = 2, Seed = 1900,
    };

    public static SyntheticModelSpec Qwen3Moe(GgmlType type = GgmlType.F32) => Mixtral(type) with
    {
        Architecture = "qwen3moe", Experts = 6, ExpertsUsed = 3, Seed = 1901,
    };

    private LlamaModel Load(SyntheticModelSpec spec, string name = "m.gguf")
    {
        var path = Path.Combine(_dir, name);
        SyntheticModel.WriteGguf(spec, path);
        return GgufModelLoader.Load(path);
    }

    [Fact]
    public void RoutingIsTheSoftmaxsTopKRenormalisedAmongTheChosen()
    {
        // Probabilities ∝ 1, 2, 4, 3: softmax 0.1, 0.2, 0.4, 0.3.
        float[] logits = [0f, MathF.Log(2), MathF.Log(4), MathF.Log(3)];
        var experts = new int[2];
        var weights = new float[2];
        ExpertRouting.Route(logits, normalize: false, new float[4], experts, weights);
        Assert.Equal([2, 3], experts);
        Assert.Equal(0.4f, weights[0], 1e-6f);
        Assert.Equal(0.3f, weights[1], 1e-6f);
        ExpertRouting.Route(logits, normalize: true, new float[4], experts, weights);
        Assert.Equal([2, 3], experts);
        Assert.Equal(4f / 7f, weights[0], 1e-6f);
        Assert.Equal(3f / 7f, weights[1], 1e-6f);
    }

    [Fact]
    public void RoutingBreaksTiesTowardTheLowerExpertAndRefusesKOutOfRange()
    {
        var experts = new int[3];
        var weights = new float[3];
        ExpertRouting.Route([1f, 2f, 2f, 2f], normalize: true, new float[4], experts, weights);
        Assert.Equal([1, 2, 3], experts);
        Assert.All(weights, w => Assert.Equal(1f / 3f, w, 1e-6f));
        // k at the expert count (every expert), above it and 0.
        var all = new int[4];
        ExpertRouting.Route([1f, 2f, 3f, 4f], normalize: true, new float[4], all, new float[4]);
        Assert.Equal([3, 2, 1, 0], all);
        Assert.Throws<ArgumentOutOfRangeException>(() => ExpertRouting.Route([1f, 2f], true, new float[2], new int[3], new float[3]));
        Assert.Throws<ArgumentOutOfRangeException>(() => ExpertRouting.Route([1f, 2f], true, new float[2], [], []));
    }

    public static TheoryData<string, GgmlType> FastCases()
    {
        var data = new TheoryData<string, GgmlType>();
        foreach (var type in SyntheticModelSpec.DTypes)
        {
            data.Add("mixtral", type);
            data.Add("qwen3moe", type);
        }
        return data;
    }

    /// <summary>
    /// The grouped path (a GEMM per used expert over its rows) against the per-token float32 twin, on 24 rows:
    /// float weights within 1e-5 of the largest output, quantized ones (8-bit activations, as llama.cpp) cosine ≥ 0.999.
    /// </summary>
    [Theory]
    [MemberData(nameof(FastCases))]
    public void GroupedExpertsEqualThePerTokenFloatReference(string arch, GgmlType type)
    {
        using var model = Load(arch == "mixtral" ? Mixtral(type) : Qwen3Moe(type));
        var c = model.Config;
        const int tokens = 24;
        var random = new Random(7);
        var x = Enumerable.Range(0, tokens * c.EmbeddingLength).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var moe = new MixtureOfExperts(c);
        foreach (var layer in model.Weights.Layers)
        {
            var experts = layer.Experts!;
            var fast = new float[x.Length];
            var slow = new float[x.Length];
            moe.Apply(experts, x, tokens, fast);
            ReferenceMixtureOfExperts.Apply(c, experts, x, tokens, slow);
            var scale = slow.Max(MathF.Abs);
            if (type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16)
                for (var i = 0; i < x.Length; i++)
                    Assert.True(MathF.Abs(fast[i] - slow[i]) <= 1e-5f * scale, $"{arch} {type} value {i}: {fast[i]} vs reference {slow[i]}");
            else
                for (var t = 0; t < tokens; t++)
                {
                    var cosine = Cosine(fast.AsSpan(t * c.EmbeddingLength, c.EmbeddingLength), slow.AsSpan(t * c.EmbeddingLength, c.EmbeddingLength));
                    Assert.True(cosine >= 0.999, $"{arch} {type} token {t}: cosine {cosine}");
                }
        }
    }

    /// <summary>
    /// With quantized experts every kernel sums a token's row the same way whatever the batch, and the router runs one
    /// token at a time, so a token's output does not depend on who shares its step, bit for bit — a float GEMM over the
    /// batch once decided a near tie between two experts differently from the session's one token.
    /// </summary>
    [Theory]
    [InlineData("mixtral", GgmlType.Q4_0)]
    [InlineData("qwen3moe", GgmlType.Q4_0)]
    [InlineData("qwen3moe", GgmlType.Q8_0)]
    [InlineData("mixtral", GgmlType.Q8_0)]
    public void AQuantizedBatchGivesEachRowsOutputAloneBitForBit(string arch, GgmlType type)
    {
        using var model = Load(arch == "mixtral" ? Mixtral(type) : Qwen3Moe(type));
        var c = model.Config;
        const int tokens = 24;
        var random = new Random(9);
        var x = Enumerable.Range(0, tokens * c.EmbeddingLength).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var moe = new MixtureOfExperts(c);
        foreach (var layer in model.Weights.Layers)
        {
            var batched = new float[x.Length];
            moe.Apply(layer.Experts!, x, tokens, batched);
            for (var t = 0; t < tokens; t++)
            {
                var alone = new float[c.EmbeddingLength];
                moe.Apply(layer.Experts!, x.AsSpan(t * c.EmbeddingLength, c.EmbeddingLength), 1, alone);
                for (var i = 0; i < alone.Length; i++)
                    Assert.True(BitConverter.SingleToInt32Bits(alone[i]) == BitConverter.SingleToInt32Bits(batched[t * c.EmbeddingLength + i]),
                        $"{arch} {type} token {t} value {i}: batched {batched[t * c.EmbeddingLength + i]} alone {alone[i]}");
            }
        }
    }

    [Fact]
    public void ABatchOfRowsGivesEachRowsOutputAlone()
    {
        using var model = Load(Mixtral());
        var c = model.Config;
        const int tokens = 16;
        var random = new Random(8);
        var x = Enumerable.Range(0, tokens * c.EmbeddingLength).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var experts = model.Weights.Layers[0].Experts!;
        var moe = new MixtureOfExperts(c);
        var batched = new float[x.Length];
        moe.Apply(experts, x, tokens, batched);
        // The batch spreads over several experts, some with several rows: the grouping is exercised.
        var chosen = new List<int>();
        var logits = new float[c.ExpertCount];
        for (var t = 0; t < tokens; t++)
        {
            experts.Router.MatMul(x.AsSpan(t * c.EmbeddingLength, c.EmbeddingLength), logits, 1);
            var pick = new int[c.ExpertsUsed];
            ExpertRouting.Route(logits, true, new float[c.ExpertCount], pick, new float[c.ExpertsUsed]);
            chosen.AddRange(pick);
        }
        Assert.True(chosen.Distinct().Count() >= 4, $"only experts {string.Join(", ", chosen.Distinct())} were chosen");
        Assert.Contains(chosen.GroupBy(e => e), g => g.Count() >= 3);
        for (var t = 0; t < tokens; t++)
        {
            var alone = new float[c.EmbeddingLength];
            moe.Apply(experts, x.AsSpan(t * c.EmbeddingLength, c.EmbeddingLength), 1, alone);
            var row = batched.AsSpan(t * c.EmbeddingLength, c.EmbeddingLength);
            var scale = alone.Max(MathF.Abs);
            for (var i = 0; i < alone.Length; i++)
                Assert.True(MathF.Abs(alone[i] - row[i]) <= 1e-5f * scale, $"token {t} value {i}: batched {row[i]} alone {alone[i]}");
        }
    }

    [Theory]
    [InlineData("mixtral", GgmlType.F32, 1)]
    [InlineData("mixtral", GgmlType.Q8_0, 5)]
    [InlineData("qwen3moe", GgmlType.F32, 512)]
    [InlineData("qwen3moe", GgmlType.Q4_0, 3)]
    public void TheBatchedExecutorComputesTheSessionsTokens(string arch, GgmlType type, int chunk)
    {
        using var model = Load(arch == "mixtral" ? Mixtral(type) : Qwen3Moe(type));
        var random = new Random(chunk);
        using var executor = new PagedLlamaExecutor(model);
        var driver = new StepDriver(executor, blocks: 64, blockSize: 4, prefixCaching: false,
            new SchedulerOptions { MaxPrefillChunk = chunk, MaxBatchedTokens = 512, MaxSequences = 8 });
        executor.FillKvCache(float.NaN);
        var prompts = new[] { 3, 9, 17, 30 }.Select(n => Enumerable.Range(0, n).Select(_ => random.Next(model.Config.VocabularySize)).ToArray()).ToArray();
        var runs = prompts.Select(p => driver.Add(p, maxTokens: 6)).ToArray();
        driver.RunToEnd();
        for (var i = 0; i < prompts.Length; i++)
            StepDriver.AssertSame(StepDriver.Alone(model, prompts[i], 6), runs[i], $"{arch} {type} chunk {chunk} prompt of {prompts[i].Length}");
    }

    [Fact]
    public void TheExpertsAreViewsOfTheMappedMergedTensorInItsOwnType()
    {
        using var model = Load(Mixtral(GgmlType.Q8_0));
        var experts = model.Weights.Layers[1].Experts!;
        Assert.Equal(8, experts.Count);
        Assert.Null(model.Weights.Layers[1].Gate);
        for (var e = 1; e < experts.Count; e++)
        {
            // Expert e's rows start where expert e − 1's end: no copy, one tensor.
            Assert.Equal(experts.Gate[e - 1].Address + experts.Gate[e - 1].Rows * (nint)experts.Gate[e - 1].RowBytes, experts.Gate[e].Address);
            Assert.Equal(experts.Down[e - 1].Address + experts.Down[e - 1].Rows * (nint)experts.Down[e - 1].RowBytes, experts.Down[e].Address);
            Assert.Equal(GgmlType.Q8_0, experts.Up[e].Type);
        }
        Assert.Equal(GgmlType.F32, experts.Router.Type); // as llama.cpp's converter keeps ffn_gate_inp
        Assert.Equal(ModelArchitecture.Mixtral, model.Config.Architecture);
        Assert.Equal((8, 2, 64, true), (model.Config.ExpertCount, model.Config.ExpertsUsed, model.Config.ExpertFeedForwardLength, model.Config.NormalizeExpertWeights));
    }

    [Theory]
    [InlineData("mixtral", GgmlType.F32)]
    [InlineData("mixtral", GgmlType.BF16)]
    [InlineData("qwen3moe", GgmlType.F16)]
    public void TheHuggingFaceFolderAndItsConversionGiveTheGgufsLogits(string arch, GgmlType type)
    {
        var spec = arch == "mixtral" ? Mixtral(type) : Qwen3Moe(type);
        var gguf = Path.Combine(_dir, "m.gguf");
        var hf = Path.Combine(_dir, "hf");
        var converted = Path.Combine(_dir, "converted.gguf");
        SyntheticModel.WriteGguf(spec, gguf);
        SyntheticModel.WriteSafetensors(spec, hf);
        HuggingFaceToGguf.Convert(hf, converted);
        using var a = ModelLoader.Load(gguf);
        using var b = ModelLoader.Load(hf);
        using var d = ModelLoader.Load(converted);
        Assert.Equal(a.Config with { RopeLayout = RopeLayout.RotateHalf }, b.Config);
        Assert.Equal(a.Config, d.Config);
        SafetensorsGgufAgreementTests.AssertSameLogits(a, b, 16, $"{arch} {type} safetensors");
        SafetensorsGgufAgreementTests.AssertSameLogits(a, d, 16, $"{arch} {type} converted");
        using var file = GgufFile.Open(converted);
        Assert.True(file.TryGetTensor("blk.1.ffn_down_exps.weight", out var down));
        Assert.Equal([64L, 64L, spec.ExpertCount], down.Dimensions);
        Assert.Equal(type, down.Type);
        Assert.True(file.TryGetTensor("blk.0.ffn_gate_inp.weight", out var router));
        Assert.Equal(GgmlType.F32, router.Type);
    }

    [Fact]
    public void ModelsQuantizeAndQuantizeOnLoadQuantizeTheExpertsAndKeepTheRouter()
    {
        var f32 = Path.Combine(_dir, "f32.gguf");
        var q8 = Path.Combine(_dir, "q8.gguf");
        SyntheticModel.WriteGguf(Mixtral(), f32);
        GgufRequantizer.Requantize(f32, q8, GgmlType.Q8_0);
        using (var file = GgufFile.Open(q8))
        {
            Assert.Equal(GgmlType.Q8_0, file.Tensors.Single(t => t.Name == "blk.0.ffn_down_exps.weight").Type);
            Assert.Equal(GgmlType.F32, file.Tensors.Single(t => t.Name == "blk.0.ffn_gate_inp.weight").Type);
        }
        using var full = GgufModelLoader.Load(f32);
        using var quantized = GgufModelLoader.Load(q8);
        using var onLoad = GgufModelLoader.Load(f32, new ModelLoadOptions { QuantizeTo = GgmlType.Q8_0 });
        Assert.Equal(GgmlType.Q8_0, onLoad.Weights.Layers[0].Experts!.Up[3].Type);
        Assert.Equal(GgmlType.F32, onLoad.Weights.Layers[0].Experts!.Router.Type);
        using var a = new LlamaSession(full, 16);
        using var b = new LlamaSession(quantized, 16);
        using var d = new LlamaSession(onLoad, 16);
        for (var p = 0; p < 16; p++)
        {
            var token = (p * 37 + 5) % full.Config.VocabularySize;
            var reference = a.Forward(token, p).ToArray();
            var fromFile = b.Forward(token, p).ToArray();
            Assert.Equal(fromFile, d.Forward(token, p).ToArray()); // the same Q8_0 bytes either way
            Assert.True(Cosine(reference, fromFile) >= 0.999, $"position {p}: cosine {Cosine(reference, fromFile)}");
        }
    }

    /// <summary>A valid generated GGUF of <paramref name="spec"/> rewritten with the given changes; returns the refusal.</summary>
    private ModelFormatException Refused(SyntheticModelSpec spec, IReadOnlyDictionary<string, GgufValue?>? metadata = null,
        IReadOnlyDictionary<string, GgufEdit.Tensor?>? tensors = null) => GgufEdit.Refusal(_dir, spec, metadata, tensors);

    public static TheoryData<string, string, uint, string> BadCounts() => new()
    {
        { "qwen3moe", "qwen3moe.expert_count", 0, "expert_count: must be at least 1 for a mixture-of-experts architecture; got 0" },
        { "qwen3moe", "qwen3moe.expert_used_count", 0, "expert_used_count: must be between 1 and expert_count 6; got 0" },
        { "qwen3moe", "qwen3moe.expert_used_count", 7, "expert_used_count: must be between 1 and expert_count 6; got 7" },
        { "mixtral", "llama.expert_used_count", 9, "expert_used_count: must be between 1 and expert_count 8; got 9" },
        { "mixtral", "llama.expert_used_count", 0, "expert_used_count: must be between 1 and expert_count 8; got 0" },
        { "mixtral", "llama.expert_count", 0, "expert_used_count: is 2 but expert_count is 0" },
        { "mixtral", "llama.expert_count", 513, "expert_count: must be between 1 and 512; got 513" },
        { "qwen3moe", "qwen3moe.expert_feed_forward_length", 0, "expert_feed_forward_length: must be between 1" },
    };

    [Theory]
    [MemberData(nameof(BadCounts))]
    public void ExpertCountsOutOfRangeAreRefusedByName(string arch, string key, uint value, string message)
    {
        var spec = arch == "mixtral" ? Mixtral() : Qwen3Moe();
        var e = Refused(spec, new Dictionary<string, GgufValue?> { [key] = GgufValue.Of(value) });
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Qwen3MoeWithoutItsExpertCountIsRefusedByName()
    {
        var e = Refused(Qwen3Moe(), new Dictionary<string, GgufValue?> { ["qwen3moe.expert_count"] = null });
        Assert.Equal("qwen3moe.expert_count", e.Field);
    }

    [Fact]
    public void ExpertsOnAnArchitectureWithoutThemAreRefused()
    {
        var e = Refused(new SyntheticModelSpec { Architecture = "qwen3", Seed = 3 }, new Dictionary<string, GgufValue?> { ["qwen3.expert_count"] = GgufValue.Of(4u) });
        Assert.Equal("qwen3.expert_count", e.Field);
    }

    public static TheoryData<string, string> WrongShapes() => new()
    {
        { "blk.0.ffn_gate_exps.weight", "shape [7, 64, 64] does not match the config's [8, 64, 64]" },
        { "blk.1.ffn_down_exps.weight", "shape [8, 64, 32] does not match the config's [8, 64, 64]" },
        { "blk.0.ffn_gate_inp.weight", "shape [7, 64] does not match the config's [8, 64]" },
        { "blk.1.ffn_up_exps.weight", "tensor is missing" },
    };

    [Theory]
    [MemberData(nameof(WrongShapes))]
    public void ExpertTensorsOfTheWrongShapeAreRefusedByName(string name, string message)
    {
        GgufEdit.Tensor? replacement = name switch
        {
            "blk.0.ffn_gate_exps.weight" => Zeros([64, 64, 7]),
            "blk.1.ffn_down_exps.weight" => Zeros([32, 64, 8]),
            "blk.0.ffn_gate_inp.weight" => Zeros([64, 7]),
            _ => null,
        };
        var e = Refused(Mixtral(), tensors: new Dictionary<string, GgufEdit.Tensor?> { [name] = replacement });
        Assert.Equal(name, e.Field);
        Assert.Contains(message, e.Message);
    }

    private static GgufEdit.Tensor Zeros(long[] dims) => new(GgmlType.F32, dims, new byte[dims.Aggregate(4L, (a, b) => a * b)]);

    /// <summary>Expert counts at, below and above the limits: LlamaConfig.Validate on the config alone.</summary>
    [Theory]
    [InlineData(512, 512, null)]
    [InlineData(513, 2, "expert_count")]
    [InlineData(1, 1, null)]
    [InlineData(8, 8, null)]
    [InlineData(8, 9, "expert_used_count")]
    [InlineData(8, 0, "expert_used_count")]
    [InlineData(0, 0, null)]
    public void ExpertLimitsAtBelowAndAbove(int count, int used, string? field)
    {
        var config = new LlamaConfig
        {
            Architecture = count > 0 ? ModelArchitecture.Mixtral : ModelArchitecture.Llama, EmbeddingLength = 64, LayerCount = 1, HeadCount = 4,
            KeyValueHeadCount = 4, HeadDim = 16, FeedForwardLength = 64, VocabularySize = 320, ContextLength = 64,
            RopeLayout = RopeLayout.AdjacentPairs, ExpertCount = count, ExpertsUsed = used, ExpertFeedForwardLength = 64,
        };
        if (field is null) config.Validate("test");
        else Assert.Equal(field, Assert.Throws<ModelFormatException>(() => config.Validate("test")).Field);
    }

    private static string HfConfigJson(string extra) => $$"""
        { "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "hidden_size": 64, "intermediate_size": 128,
          "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 320,
          "max_position_embeddings": 128, "num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 32 {{extra}} }
        """;

    [Fact]
    public void Qwen3MoeConfigJsonIsReadAsTransformersReadsIt()
    {
        var config = HfConfig.Parse(Encoding.UTF8.GetBytes(HfConfigJson("")), "config.json");
        Assert.Equal((ModelArchitecture.Qwen3Moe, 8, 2, 32, false, true), (config.Architecture, config.ExpertCount, config.ExpertsUsed,
            config.ExpertFeedForwardLength, config.NormalizeExpertWeights, config.HasQkNorm));
        Assert.True(HfConfig.Parse(Encoding.UTF8.GetBytes(HfConfigJson(""", "norm_topk_prob": true, "decoder_sparse_step": 1, "mlp_only_layers": []""")), "config.json").NormalizeExpertWeights);
    }

    [Theory]
    [InlineData(""", "decoder_sparse_step": 2""", "decoder_sparse_step")]
    [InlineData(""", "mlp_only_layers": [1]""", "mlp_only_layers")]
    [InlineData(""", "num_experts_per_tok": 9""", "num_experts_per_tok")]
    [InlineData(""", "num_experts": 0""", "num_experts")]
    [InlineData(""", "num_experts": 513""", "num_experts")]
    public void Qwen3MoeConfigsWithWhatIsNotBuiltAreRefusedByName(string extra, string field)
    {
        var e = Assert.Throws<ModelFormatException>(() => HfConfig.Parse(Encoding.UTF8.GetBytes(Override(HfConfigJson(""), extra)), "config.json"));
        Assert.Equal(field, e.Field);
    }

    /// <summary>The base config with the keys of <paramref name="extra"/> replaced (JSON keeps the last duplicate, so the base's are renamed first).</summary>
    private static string Override(string json, string extra)
    {
        foreach (var key in new[] { "num_experts_per_tok", "num_experts" })
            if (extra.Contains($"\"{key}\"")) json = json.Replace($"\"{key}\":", $"\"replaced_{key}\":");
        return json.Replace(" }", extra + " }");
    }

    [Fact]
    public void MixtralConfigJsonWithoutItsExpertCountIsRefusedByName()
    {
        var json = """
            { "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": 64, "intermediate_size": 128,
              "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 320, "max_position_embeddings": 128, "num_experts_per_tok": 2 }
            """;
        Assert.Equal("num_local_experts", Assert.Throws<ModelFormatException>(() => HfConfig.Parse(Encoding.UTF8.GetBytes(json), "config.json")).Field);
        var config = HfConfig.Parse(Encoding.UTF8.GetBytes(json.Replace("\"num_experts_per_tok\"", "\"num_local_experts\": 8, \"sliding_window\": null, \"num_experts_per_tok\"")), "config.json");
        Assert.Equal((ModelArchitecture.Mixtral, 8, 2, 128, true, 0), (config.Architecture, config.ExpertCount, config.ExpertsUsed, config.ExpertFeedForwardLength, config.NormalizeExpertWeights, config.SlidingWindow));
    }

    [Fact]
    public void TheConverterRefusesAQwen3MoeWithoutRenormalisationWhichLlamaCppCannotRun()
    {
        var hf = Path.Combine(_dir, "hf");
        SyntheticModel.WriteSafetensors(Qwen3Moe(), hf);
        var configPath = Path.Combine(hf, "config.json");
        File.WriteAllText(configPath, File.ReadAllText(configPath).Replace("\"norm_topk_prob\": true", "\"norm_topk_prob\": false"));
        using (var model = ModelLoader.Load(hf)) Assert.False(model.Config.NormalizeExpertWeights);
        var e = Assert.Throws<ModelFormatException>(() => HuggingFaceToGguf.Convert(hf, Path.Combine(_dir, "out.gguf")));
        Assert.Equal("norm_topk_prob", e.Field);
    }

    [Fact]
    public void TheSynthesizerRefusesExpertCountsOutOfRange()
    {
        Assert.Contains("experts-used must be between 1 and 4; got 5", Assert.Throws<ArgumentException>(() => (Mixtral() with { Experts = 4, ExpertsUsed = 5 }).Validate()).Message);
        Assert.Contains("experts must be between 1 and 512; got 0", Assert.Throws<ArgumentException>(() => (Qwen3Moe() with { Experts = 0 }).Validate()).Message);
        Assert.Contains("experts are for llama (Mixtral) and qwen3moe", Assert.Throws<ArgumentException>(() => new SyntheticModelSpec { Architecture = "qwen2", Experts = 4 }.Validate()).Message);
        (Mixtral() with { Experts = 1, ExpertsUsed = 1 }).Validate();
    }

    private static double Cosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double dot = 0, na = 0, nb = 0;
        for (var i = 0; i < a.Length; i++)
        {
            dot += a[i] * (double)b[i];
            na += a[i] * (double)a[i];
            nb += b[i] * (double)b[i];
        }
        return dot / Math.Sqrt(na * nb);
    }
}
