using System.Text;
using System.Text.Json.Nodes;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Kernels.Reference;
using Bulwark.Engine.Model.Config;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Model;

public class HfConfigTests
{
    /// <summary>A small but complete llama config; tests change one key at a time.</summary>
    private static JsonObject Llama() => new()
    {
        ["architectures"] = new JsonArray("LlamaForCausalLM"),
        ["model_type"] = "llama",
        ["hidden_size"] = 64,
        ["num_hidden_layers"] = 2,
        ["num_attention_heads"] = 8,
        ["num_key_value_heads"] = 2,
        ["intermediate_size"] = 160,
        ["vocab_size"] = 300,
        ["max_position_embeddings"] = 1024,
        ["rms_norm_eps"] = 1e-5,
        ["rope_theta"] = 10000.0,
        ["hidden_act"] = "silu",
    };

    private static JsonObject With(JsonObject config, string key, JsonNode? value)
    {
        config[key] = value;
        return config;
    }

    private static JsonObject Without(JsonObject config, string key)
    {
        config.Remove(key);
        return config;
    }

    private static LlamaConfig Parse(JsonNode config) => HfConfig.Parse(Encoding.UTF8.GetBytes(config.ToJsonString()), "/models/x/config.json");

    private static ModelFormatException Refused(JsonNode config) => Assert.Throws<ModelFormatException>(() => Parse(config));

    [FixtureFact]
    public void FixtureConfigGivesTheCheckpointShape()
    {
        var c = HfConfig.Read(Fixtures.PathOf("model-260k", "hf", "config.json"));
        Assert.Equal((ModelArchitecture.Llama, 64, 5, 8, 4, 8, 172, 512, 512), (c.Architecture, c.EmbeddingLength, c.LayerCount, c.HeadCount, c.KeyValueHeadCount, c.HeadDim, c.FeedForwardLength, c.VocabularySize, c.ContextLength));
        Assert.Equal((1e-5f, 10000f, RopeLayout.RotateHalf, true), (c.RmsNormEpsilon, c.RopeTheta, c.RopeLayout, c.TiedOutputHead));
        Assert.Equal(RopeScaling.None, c.RopeScaling);
        Assert.False(HfConfig.Read(Fixtures.PathOf("model-260k", "hf-explicit-lm-head", "config.json")).TiedOutputHead);
    }

    [Fact]
    public void AbsentKeysTakeTransformersDefaults()
    {
        var config = Without(Without(Without(Without(Without(Llama(), "num_key_value_heads"), "rms_norm_eps"), "rope_theta"), "hidden_act"), "architectures");
        var c = Parse(config);
        Assert.Equal((8, 8, 1e-6f, 10000f, false), (c.KeyValueHeadCount, c.HeadDim, c.RmsNormEpsilon, c.RopeTheta, c.TiedOutputHead));
        Assert.Equal(8, Parse(With(Llama(), "num_key_value_heads", null)).KeyValueHeadCount);
    }

    [Fact]
    public void Llama3RopeScalingIsReadFromRopeScaling()
    {
        // Llama 3.1/3.2's config.json values.
        var config = With(With(Llama(), "rope_theta", 500000.0), "rope_scaling", new JsonObject
        {
            ["factor"] = 32.0, ["high_freq_factor"] = 4.0, ["low_freq_factor"] = 1.0,
            ["original_max_position_embeddings"] = 8192, ["rope_type"] = "llama3",
        });
        var c = Parse(config);
        Assert.Equal(500000f, c.RopeTheta);
        Assert.Equal(new RopeScaling(RopeScalingKind.Llama3, 32f, 1f, 4f, 8192), c.RopeScaling);
    }

    [Fact]
    public void RopeParametersGiveTheSameConfigAsRopeThetaAndRopeScaling()
    {
        var old = With(With(Llama(), "rope_theta", 500000.0), "rope_scaling", new JsonObject
        {
            ["factor"] = 8.0, ["high_freq_factor"] = 4.0, ["low_freq_factor"] = 1.0,
            ["original_max_position_embeddings"] = 8192, ["rope_type"] = "llama3",
        });
        var v5 = With(Without(Llama(), "rope_theta"), "rope_parameters", new JsonObject
        {
            ["rope_theta"] = 500000.0, ["rope_type"] = "llama3", ["factor"] = 8.0, ["high_freq_factor"] = 4.0,
            ["low_freq_factor"] = 1.0, ["original_max_position_embeddings"] = 8192,
        });
        Assert.Equal(Parse(old), Parse(v5));
        var plain = Parse(With(Without(Llama(), "rope_theta"), "rope_parameters", new JsonObject { ["rope_theta"] = 1e6, ["rope_type"] = "default" }));
        Assert.Equal((1e6f, RopeScaling.None), (plain.RopeTheta, plain.RopeScaling));
    }

    [Fact]
    public void OlderLinearScalingSpelledTypeIsRead()
    {
        var c = Parse(With(Llama(), "rope_scaling", new JsonObject { ["type"] = "linear", ["factor"] = 2.0 }));
        Assert.Equal(new RopeScaling(RopeScalingKind.Linear, 2f), c.RopeScaling);
    }

    [Fact]
    public void Qwen2HasQkvBiasesAndQwen3HasQkNormsWithItsOwnHeadDim()
    {
        var qwen2 = Parse(With(With(Llama(), "model_type", "qwen2"), "architectures", new JsonArray("Qwen2ForCausalLM")));
        Assert.Equal((ModelArchitecture.Qwen2, true, false), (qwen2.Architecture, qwen2.HasQkvBias, qwen2.HasQkNorm));
        var qwen3 = Parse(With(With(With(Llama(), "model_type", "qwen3"), "architectures", new JsonArray("Qwen3ForCausalLM")), "head_dim", 16));
        Assert.Equal((ModelArchitecture.Qwen3, false, true, 16, 128), (qwen3.Architecture, qwen3.HasQkvBias, qwen3.HasQkNorm, qwen3.HeadDim, qwen3.QueryLength));
        Assert.All(new[] { qwen2, qwen3 }, c => Assert.Equal(RopeLayout.RotateHalf, c.RopeLayout));
    }

    [Fact]
    public void MistralsSlidingWindowAppliesToEveryLayer()
    {
        var mistral = With(With(With(Llama(), "model_type", "mistral"), "architectures", new JsonArray("MistralForCausalLM")), "sliding_window", 512);
        var windowed = Parse(mistral);
        Assert.Equal((ModelArchitecture.Mistral, 1024, 512, true), (windowed.Architecture, windowed.ContextLength, windowed.SlidingWindow, windowed.EveryLayerWindowed));
        Assert.Equal((1024, 0), (Parse(With(mistral, "sliding_window", null)).ContextLength, Parse(With(mistral, "sliding_window", null)).SlidingWindow));
        Assert.Contains("sliding_window", Assert.Throws<ModelFormatException>(() => Parse(With(mistral, "sliding_window", 0))).Message);
    }

    [Fact]
    public void QwensSlidingWindowAppliesFromMaxWindowLayersOn()
    {
        var qwen2 = With(With(With(Llama(), "model_type", "qwen2"), "architectures", new JsonArray("Qwen2ForCausalLM")), "sliding_window", 256);
        var off = Parse(With(qwen2, "use_sliding_window", false));
        Assert.Equal((1024, 0, 0), (off.ContextLength, off.WindowOf(0), off.WindowOf(1)));
        var on = With(qwen2, "use_sliding_window", true);
        // transformers' default max_window_layers (28) is past these 2 layers: no layer windowed, the context kept.
        var byDefault = Parse(on);
        Assert.Equal((1024, 0, 0, 0), (byDefault.ContextLength, byDefault.SlidingWindow, byDefault.WindowOf(0), byDefault.WindowOf(1)));
        foreach (var (first, windows) in new[] { (0, new[] { 256, 256 }), (1, new[] { 0, 256 }), (2, new[] { 0, 0 }), (3, new[] { 0, 0 }) })
        {
            var c = Parse(With(on, "max_window_layers", first));
            Assert.Equal(windows, Enumerable.Range(0, 2).Select(c.WindowOf));
            Assert.Equal((1024, first == 0), (c.ContextLength, c.EveryLayerWindowed));
        }
        Assert.Contains("max_window_layers", Assert.Throws<ModelFormatException>(() => Parse(With(on, "max_window_layers", -1))).Message);
        var qwen3 = Parse(With(With(With(on, "model_type", "qwen3"), "architectures", new JsonArray("Qwen3ForCausalLM")), "max_window_layers", 1));
        Assert.Equal([0, 256], Enumerable.Range(0, 2).Select(qwen3.WindowOf));
    }

    private static JsonObject SmolLm3(int layers) => With(With(With(Llama(), "model_type", "smollm3"), "architectures", new JsonArray("SmolLM3ForCausalLM")), "num_hidden_layers", layers);

    [Fact]
    public void SmolLm3SkipsRopeInEveryFourthLayerByDefaultOrAsItsIntervalSays()
    {
        var c = Parse(SmolLm3(8));
        Assert.Equal((ModelArchitecture.SmolLM3, 4, RopeLayout.RotateHalf), (c.Architecture, c.NoRopeLayerStep, c.RopeLayout));
        Assert.Equal([true, true, true, false, true, true, true, false], Enumerable.Range(0, 8).Select(c.UsesRope));
        var listed = With(SmolLm3(4), "no_rope_layers", new JsonArray(1, 1, 1, 0));
        Assert.Equal(4, Parse(listed).NoRopeLayerStep);
        var everyOther = With(With(SmolLm3(4), "no_rope_layer_interval", 2), "no_rope_layers", new JsonArray(1, 0, 1, 0));
        Assert.Equal([true, false, true, false], Enumerable.Range(0, 4).Select(Parse(everyOther).UsesRope));
        Assert.True(Enumerable.Range(0, 4).All(Parse(Llama()).UsesRope));
    }

    [Theory]
    [InlineData("[1,1,1]", "no_rope_layers: must be an array of 4 entries (one per layer, 1: RoPE, 0: none); got [1,1,1]")]
    [InlineData("3", "no_rope_layers: must be an array of 4 entries (one per layer, 1: RoPE, 0: none); got 3")]
    [InlineData("[1,1,2,0]", "no_rope_layers: entry 2 must be 0 or 1; got 2")]
    [InlineData("[1,\"1\",1,0]", "no_rope_layers: entry 1 must be 0 or 1; got \"1\"")]
    [InlineData("[0,1,1,1]", "no_rope_layers: entry 0 is 0, but only the pattern of no_rope_layer_interval 4 is supported (no RoPE in every 4th layer), which gives 1")]
    public void SmolLm3NoRopeListsOtherThanTheIntervalsPatternAreRefused(string list, string message)
    {
        var e = Refused(With(SmolLm3(4), "no_rope_layers", JsonNode.Parse(list)));
        Assert.Contains(message, e.Message);
        Assert.Contains("between 1 and 4096; got 0", Refused(With(SmolLm3(4), "no_rope_layer_interval", 0)).Message);
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("falcon")]
    [InlineData("gemma")]
    public void UnknownArchitecturesAreRefusedWithTheSupportedList(string modelType)
    {
        var e = Refused(With(Llama(), "model_type", modelType));
        Assert.Contains($"model_type: \"{modelType}\" is not supported (supported: {HfConfig.SupportedList})", e.Message);
        Assert.StartsWith("llama (LlamaForCausalLM), mistral (MistralForCausalLM), qwen2 (Qwen2ForCausalLM), qwen3 (Qwen3ForCausalLM)", HfConfig.SupportedList);
        Assert.Contains("gemma2 (Gemma2ForCausalLM), gemma3_text (Gemma3ForCausalLM)", HfConfig.SupportedList);
        Assert.StartsWith("config.json: ", e.Message);
    }

    [Fact]
    public void ModelsWithoutACausalLmHeadAreRefused()
    {
        var e = Refused(With(Llama(), "architectures", new JsonArray("LlamaForSequenceClassification")));
        Assert.Contains("architectures: [LlamaForSequenceClassification] does not include LlamaForCausalLM", e.Message);
        Assert.Contains("model_type: is missing", Refused(Without(Llama(), "model_type")).Message);
    }

    /// <summary>AWQ/GPTQ quantization_config: accepted values (with what they read as) at and around every limit.</summary>
    public static TheoryData<string, string> Int4Accepted() => new()
    {
        { """{"quant_method":"awq","bits":4,"group_size":128,"zero_point":true,"version":"gemm"}""", "Awq 128 0 False" },
        { """{"quant_method":"awq"}""", "Awq 128 0 False" }, // transformers' AwqConfig defaults
        { """{"quant_method":"AWQ","w_bit":4,"q_group_size":64,"version":"GEMM"}""", "Awq 64 0 False" },
        { """{"quant_method":"awq","group_size":32}""", "Awq 32 0 False" }, // the smallest group: one block
        { """{"quant_method":"awq","group_size":-1}""", "Awq 0 0 False" }, // one group per row
        { """{"quant_method":"gptq","bits":4}""", "Gptq 128 1 False" },
        { """{"quant_method":"gptq","bits":4,"group_size":4194304,"desc_act":true,"sym":false,"checkpoint_format":"gptq_v2"}""", "Gptq 4194304 0 True" },
    };

    [Theory]
    [MemberData(nameof(Int4Accepted))]
    public void Int4QuantizationConfigsAreRead(string json, string expected)
    {
        var int4 = Parse(With(Llama(), "quantization_config", JsonNode.Parse(json))).Int4!;
        Assert.Equal(expected, $"{int4.Method} {int4.GroupSize} {int4.ZeroOffset} {int4.DescAct}");
    }

    public static TheoryData<string, string> Int4Refused() => new()
    {
        { """{"bits":4}""", "quantization_config.quant_method: is missing (supported: awq, gptq)" },
        { """{"quant_method":"fp8"}""", "quantization_config.quant_method: \"fp8\" is not supported" },
        { """{"quant_method":"awq","bits":3}""", "quantization_config.bits: 3 is not supported (only 4-bit" },
        { """{"quant_method":"awq","bits":5}""", "quantization_config.bits: 5 is not supported" },
        { """{"quant_method":"gptq","bits":8}""", "quantization_config.bits: 8 is not supported" },
        { """{"quant_method":"gptq"}""", "quantization_config.bits: is missing" },
        { """{"quant_method":"gptq","bits":4,"group_size":16}""", "quantization_config.group_size: 16 is not supported (must be -1 or a positive multiple of 32" },
        { """{"quant_method":"gptq","bits":4,"group_size":48}""", "quantization_config.group_size: 48 is not supported" },
        { """{"quant_method":"awq","group_size":0}""", "quantization_config.group_size: 0 is not supported" },
        { """{"quant_method":"awq","group_size":-2}""", "quantization_config.group_size: must be between -1 and 4194304; got -2" },
        { """{"quant_method":"awq","group_size":4194336}""", "quantization_config.group_size: must be between -1 and 4194304; got 4194336" },
        { """{"quant_method":"awq","zero_point":false}""", "quantization_config.zero_point: false is not supported" },
        { """{"quant_method":"awq","version":"gemv"}""", "quantization_config.version: \"gemv\" is not supported (only AutoAWQ's \"gemm\"" },
        { """{"quant_method":"awq","backend":"llm-awq"}""", "quantization_config.backend: \"llm-awq\" is not supported" },
        { """{"quant_method":"gptq","bits":4,"checkpoint_format":"marlin"}""", "quantization_config.checkpoint_format: \"marlin\" is not supported (supported: gptq, gptq_v2)" },
        { """{"quant_method":"gptq","bits":4,"is_marlin_format":true}""", "quantization_config.is_marlin_format: true is not supported" },
        { """{"quant_method":"gptq","bits":4,"desc_act":"yes"}""", "quantization_config.desc_act: must be true or false" },
        { "[4]", "quantization_config: must be an object" },
    };

    [Theory]
    [MemberData(nameof(Int4Refused))]
    public void Int4QuantizationConfigsOutsideTheLimitsAreRefusedByField(string json, string message) =>
        Assert.Contains(message, Refused(With(Llama(), "quantization_config", JsonNode.Parse(json))).Message);

    public static TheoryData<string, string, string> UnsupportedFeatures() => new()
    {
        { "quantization_config", """{"quant_method":"bitsandbytes","load_in_4bit":true}""", "quantization_config.quant_method: \"bitsandbytes\" is not supported (supported: awq, gptq" },
        { "hidden_act", "\"gelu\"", "hidden_act: \"gelu\" is not supported" },
        { "attention_bias", "true", "attention_bias: true is not supported for llama" },
        { "mlp_bias", "true", "mlp_bias: true is not supported" },
        { "partial_rotary_factor", "0.5", "partial_rotary_factor: partial RoPE is not supported: must be 1; got 0.5" },
        { "rope_scaling", """{"rope_type":"yarn","factor":4.0}""", "rope_scaling.rope_type: \"yarn\" is not supported (supported: default, linear, llama3, longrope (su))" },
        { "rope_scaling", """{"type":"dynamic","factor":4.0}""", "rope_scaling.type: \"dynamic\" is not supported" },
        { "rope_scaling", """{"rope_type":"linear"}""", "rope_scaling.factor: is missing" },
        { "rope_scaling", """{"rope_type":"linear","factor":-1}""", "rope_scaling.factor: must be above 0" },
        { "rope_scaling", """{"rope_type":"llama3","factor":8.0,"low_freq_factor":4.0,"high_freq_factor":4.0}""", "rope_scaling.high_freq_factor: must be above low_freq_factor 4; got 4" },
        { "rope_scaling", "[1]", "rope_scaling: must be an object" },
        { "rope_parameters", """{"rope_type":"default","partial_rotary_factor":0.25}""", "rope_parameters.partial_rotary_factor" },
        { "rope_theta", "0.5", "rope_theta: must be above 1 and at most 1000000000000; got 0.5" },
        { "rms_norm_eps", "\"1e-5\"", "rms_norm_eps: must be a finite number; got \"1e-5\"" },
        { "rms_norm_eps", "0", "rms_norm_eps: must be in (0, 1); got 0" },
        { "vocab_size", "12.5", "vocab_size: must be an integer; got 12.5" },
        { "vocab_size", "-3", "vocab_size: must be between 1 and 16777216; got -3" },
        { "vocab_size", "1099511627776", "vocab_size: must be between 1 and 16777216; got 1099511627776" },
        { "num_key_value_heads", "3", "num_key_value_heads: must divide num_attention_heads 8; got 3" },
        { "num_key_value_heads", "16", "num_key_value_heads: must be between 1 and 8; got 16" },
        { "head_dim", "7", "head_dim: must be even for RoPE; got 7" },
        { "tie_word_embeddings", "\"yes\"", "tie_word_embeddings: must be true or false" },
        { "architectures", "\"LlamaForCausalLM\"", "architectures: must be an array of class names" },
    };

    [Theory]
    [MemberData(nameof(UnsupportedFeatures))]
    public void UnsupportedOrOutOfRangeValuesAreRefusedNamingTheKey(string key, string json, string expected)
    {
        var e = Refused(With(Llama(), key, JsonNode.Parse(json)));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Qwen2MayDeclareAttentionBias()
    {
        var qwen2 = With(With(With(Llama(), "model_type", "qwen2"), "architectures", new JsonArray("Qwen2ForCausalLM")), "attention_bias", true);
        Assert.True(Parse(qwen2).HasQkvBias);
    }

    [Theory]
    [InlineData(0, false)]
    [InlineData(1, true)]
    [InlineData(4096, true)]
    [InlineData(4097, false)]
    public void LayerCountIsCheckedAtItsLimits(int layers, bool accepted)
    {
        var config = With(Llama(), "num_hidden_layers", layers);
        if (accepted) Assert.Equal(layers, Parse(config).LayerCount);
        else Assert.Contains("num_hidden_layers: must be between 1 and 4096", Refused(config).Message);
    }

    [Fact]
    public void MissingRequiredKeysAreNamed()
    {
        foreach (var key in new[] { "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size", "max_position_embeddings" })
            Assert.Contains($"{key}: is missing", Refused(Without(Llama(), key)).Message);
    }

    [Theory]
    [InlineData("{")]
    [InlineData("[]")]
    [InlineData("{\"model_type\":\"llama\",}")]
    public void InvalidJsonIsRefused(string json)
    {
        var e = Assert.Throws<ModelFormatException>(() => HfConfig.Parse(Encoding.UTF8.GetBytes(json), "config.json"));
        Assert.StartsWith("config.json: content: ", e.Message);
    }

    [Fact]
    public void InvalidUtf8AnywhereIsRefused()
    {
        byte[] json = [.. "{\"model_type\":\"ll"u8, 0xC3, 0x28, .. "a\"}"u8];
        Assert.Contains("config.json: content: is not valid UTF-8", Assert.Throws<ModelFormatException>(() => HfConfig.Parse(json, "config.json")).Message);
    }

    [Fact]
    public void DeeplyNestedJsonIsRefused()
    {
        var json = "{\"x\":" + new string('[', 100) + new string(']', 100) + "}";
        Assert.Contains("is not valid JSON", Assert.Throws<ModelFormatException>(() => HfConfig.Parse(Encoding.UTF8.GetBytes(json), "config.json")).Message);
    }

    [Fact]
    public void ConfigFileSizeIsLimitedAtTheLimitAndAbove()
    {
        var folder = Fixtures.NewTempDirectory("bigconfig");
        var path = Path.Combine(folder, "config.json");
        var body = Llama().ToJsonString();
        File.WriteAllText(path, body + new string(' ', (int)(HfConfig.MaxBytes - body.Length)));
        Assert.Equal(64, HfConfig.Read(path).EmbeddingLength);
        File.AppendAllText(path, " ");
        Assert.Contains($"{HfConfig.MaxBytes + 1} bytes exceeds the limit of {HfConfig.MaxBytes}", Assert.Throws<ModelFormatException>(() => HfConfig.Read(path)).Message);
    }
}
