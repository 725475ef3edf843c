using System.Text;
using System.Text.Json.Nodes;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Kernels.Reference;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Synthesis;
using Bulwark.Engine.Tests.Parity;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Model;

/// <summary>
/// Gemma 2 and Gemma 3 configs from GGUF metadata (llama.cpp's keys and defaults) and from config.json
/// (transformers' keys and defaults), and every new value a hostile file could get wrong, refused by name.
/// </summary>
public class GemmaConfigTests
{
    private static string Write(SyntheticModelSpec spec)
    {
        var path = Path.Combine(Fixtures.NewTempDirectory("gemma-config"), "model.gguf");
        SyntheticModel.WriteGguf(spec, path);
        return path;
    }

    private static LlamaConfig ReadGguf(string path)
    {
        using var file = GgufFile.Open(path);
        return GgufModelLoader.ReadConfig(file);
    }

    /// <summary>The same file with metadata values replaced (or added).</summary>
    private static string Rewrite(string source, params (string Key, GgufValue Value)[] changes)
    {
        var target = Path.Combine(Path.GetDirectoryName(source)!, $"rewritten-{Guid.NewGuid():N}.gguf");
        using var file = GgufFile.Open(source);
        var writer = new GgufWriter();
        foreach (var (k, v) in file.MetadataInOrder)
            if (!changes.Any(c => c.Key == k)) writer.Add(k, v);
        foreach (var (k, v) in changes) writer.Add(k, v);
        foreach (var tensor in file.Tensors) writer.AddTensor(tensor.Name, tensor.Type, tensor.Dimensions, file.TensorBytes(tensor).ToArray());
        writer.WriteTo(target);
        return target;
    }

    [Fact]
    public void Gemma2GgufHasItsWindowCapsScalesAndTiedHead()
    {
        var c = ReadGguf(Write(LlamaCppGemmaParityTests.Spec("gemma2")));
        Assert.Equal((ModelArchitecture.Gemma2, 16, 2, true, RopeLayout.RotateHalf, false), (c.Architecture, c.SlidingWindow, c.SlidingWindowPattern, c.TiedOutputHead, c.RopeLayout, c.HasQkNorm));
        Assert.Equal(new GemmaConfig { EmbeddingScale = 8f, AttentionScale = 0.25f, AttentionLogitSoftCap = 2f, FinalLogitSoftCap = 5f }, c.Gemma);
        Assert.Equal([16, 0, 16], Enumerable.Range(0, 3).Select(c.WindowOf));
    }

    [Fact]
    public void Gemma3GgufHasFiveLocalLayersToOneGlobalWithTheirOwnRope()
    {
        var path = Write(LlamaCppGemmaParityTests.Spec("gemma3"));
        var c = ReadGguf(path);
        Assert.Equal((ModelArchitecture.Gemma3, 16, 6, true, 1_000_000f), (c.Architecture, c.SlidingWindow, c.SlidingWindowPattern, c.HasQkNorm, c.RopeTheta));
        Assert.Equal(new RopeScaling(RopeScalingKind.Linear, 8f), c.RopeScaling);
        Assert.Equal(new GemmaConfig { EmbeddingScale = 8f, AttentionScale = 0.25f, LocalRopeTheta = 10000f }, c.Gemma);
        Assert.Equal([16, 16, 16, 16, 16, 0, 16], Enumerable.Range(0, 7).Select(c.WindowOf));
        using var model = ModelLoader.Load(path);
        Assert.Same(model.Weights.RopeInverseFrequencies, model.Weights.RopeFor(c, 5));
        Assert.Same(model.Weights.LocalRopeInverseFrequencies, model.Weights.RopeFor(c, 4));
        Assert.Equal(1f, model.Weights.LocalRopeInverseFrequencies![0]);
        Assert.Equal(1f / 8f, model.Weights.RopeInverseFrequencies[0]); // linear scaling 8 on the global layers only
        // Without the window key llama.cpp runs Gemma 3 with full attention everywhere, and so do we.
        var unwindowed = ReadGguf(Rewrite(path, ("gemma3.attention.sliding_window", GgufValue.Of(0u))));
        Assert.Equal((0, 0f), (unwindowed.SlidingWindow, unwindowed.Gemma!.LocalRopeTheta));
    }

    [Fact]
    public void The27BShapesScaleQueriesByDimOverHeadsAsLlamaCppDoes()
    {
        // 46 layers is llama.cpp's Gemma 2 27B: its scale is (n_embd / n_head)^-½ even when head_dim differs.
        var path = Write(new SyntheticModelSpec { Architecture = "gemma2", Layers = 46, Dim = 32, Heads = 4, KvHeads = 2, FeedForward = 32, Vocab = 320 });
        var c = ReadGguf(Rewrite(path, ("gemma2.attention.key_length", GgufValue.Of(16u)), ("gemma2.rope.dimension_count", GgufValue.Of(16u))));
        Assert.Equal((16, 1f / MathF.Sqrt(8)), (c.HeadDim, c.Gemma!.AttentionScale));
    }

    public static TheoryData<string, string, GgufValue, string> HostileGguf() => new()
    {
        { "gemma2", "gemma2.attention.sliding_window", GgufValue.Of(-1), "gemma2.attention.sliding_window: must be between 0 and 16777216; got -1" },
        { "gemma2", "gemma2.attention.sliding_window", GgufValue.Of(1u << 30), "got 1073741824" },
        { "gemma2", "gemma2.attention.sliding_window", GgufValue.Of("wide"), "gemma2.attention.sliding_window" },
        { "gemma2", "gemma2.attn_logit_softcapping", GgufValue.Of(0f), "gemma2.attn_logit_softcapping: must be above 0 and at most 1e9; got 0" },
        { "gemma2", "gemma2.attn_logit_softcapping", GgufValue.Of(float.NaN), "gemma2.attn_logit_softcapping: must be above 0" },
        { "gemma2", "gemma2.final_logit_softcapping", GgufValue.Of(-30f), "gemma2.final_logit_softcapping: must be above 0" },
        { "gemma2", "gemma2.final_logit_softcapping", GgufValue.Of(float.PositiveInfinity), "gemma2.final_logit_softcapping: must be above 0" },
        { "gemma3", "gemma3.rope.freq_base", GgufValue.Of(float.NaN), "rope_theta" },
    };

    [Theory]
    [MemberData(nameof(HostileGguf))]
    public void HostileGemmaMetadataIsRefusedByName(string arch, string key, GgufValue value, string expected)
    {
        var path = Rewrite(Write(new SyntheticModelSpec { Architecture = arch, Layers = 2 }), (key, value));
        var e = Assert.Throws<ModelFormatException>(() => ModelLoader.Load(path));
        Assert.Contains(expected, e.Message);
    }

    private static JsonObject Gemma2() => new()
    {
        ["architectures"] = new JsonArray("Gemma2ForCausalLM"),
        ["model_type"] = "gemma2",
        ["hidden_size"] = 64,
        ["intermediate_size"] = 128,
        ["num_hidden_layers"] = 4,
        ["num_attention_heads"] = 4,
        ["num_key_value_heads"] = 2,
        ["vocab_size"] = 320,
        ["max_position_embeddings"] = 8192,
    };

    private static JsonObject Gemma3() => new()
    {
        ["architectures"] = new JsonArray("Gemma3ForCausalLM"),
        ["model_type"] = "gemma3_text",
        ["hidden_size"] = 64,
        ["intermediate_size"] = 128,
        ["num_hidden_layers"] = 12,
        ["num_attention_heads"] = 4,
        ["num_key_value_heads"] = 1,
        ["vocab_size"] = 320,
        ["max_position_embeddings"] = 32768,
    };

    private static JsonObject With(JsonObject config, string key, JsonNode? value)
    {
        var copy = (JsonObject)config.DeepClone();
        copy[key] = value;
        return copy;
    }

    private static LlamaConfig Parse(JsonNode config) => HfConfig.Parse(Encoding.UTF8.GetBytes(config.ToJsonString()), "config.json");

    [Fact]
    public void AbsentKeysTakeTransformersDefaults()
    {
        var g2 = Parse(Gemma2());
        Assert.Equal((256, 4096, 2, true, 1e-6f, 10000f), (g2.HeadDim, g2.SlidingWindow, g2.SlidingWindowPattern, g2.TiedOutputHead, g2.RmsNormEpsilon, g2.RopeTheta));
        Assert.Equal(new GemmaConfig { EmbeddingScale = 8f, AttentionScale = 1f / 16, AttentionLogitSoftCap = 50f, FinalLogitSoftCap = 30f }, g2.Gemma);
        var g3 = Parse(Gemma3());
        Assert.Equal((256, 4096, 6, true, 1_000_000f), (g3.HeadDim, g3.SlidingWindow, g3.SlidingWindowPattern, g3.HasQkNorm, g3.RopeTheta));
        Assert.Equal(new GemmaConfig { EmbeddingScale = 8f, AttentionScale = 1f / 16, LocalRopeTheta = 10000f }, g3.Gemma);
    }

    [Fact]
    public void NullCapsMeanNoCapAndLayerTypesGiveThePattern()
    {
        var uncapped = Parse(With(With(Gemma2(), "attn_logit_softcapping", null), "final_logit_softcapping", null));
        Assert.Equal((0f, 0f), (uncapped.Gemma!.AttentionLogitSoftCap, uncapped.Gemma.FinalLogitSoftCap));
        var types = new JsonArray(Enumerable.Range(0, 12).Select(l => (JsonNode)(l % 4 < 3 ? "sliding_attention" : "full_attention")).ToArray());
        Assert.Equal(4, Parse(With(Gemma3(), "layer_types", types)).SlidingWindowPattern);
        var parameters = JsonNode.Parse("""{"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0}, "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}""");
        var v5 = Parse(With(Gemma3(), "rope_parameters", parameters));
        Assert.Equal((1_000_000f, new RopeScaling(RopeScalingKind.Linear, 8f), 10000f), (v5.RopeTheta, v5.RopeScaling, v5.Gemma!.LocalRopeTheta));
    }

    public static TheoryData<string, string, string, string> HostileConfigs() => new()
    {
        { "gemma2", "hidden_activation", "\"gelu\"", "hidden_activation: \"gelu\" is not supported (Gemma's MLP is GeGLU: gelu_pytorch_tanh)" },
        { "gemma2", "hidden_act", "\"silu\"", "hidden_act: \"silu\" is not supported" },
        { "gemma2", "attn_logit_softcapping", "0", "attn_logit_softcapping: must be above 0" },
        { "gemma2", "final_logit_softcapping", "\"30\"", "final_logit_softcapping: must be a finite number" },
        { "gemma2", "query_pre_attn_scalar", "0", "query_pre_attn_scalar: must be above 0" },
        { "gemma2", "sliding_window", "0", "sliding_window: must be between 1 and 16777216; got 0" },
        { "gemma2", "head_dim", "15", "head_dim: must be even" },
        { "gemma2", "layer_types", "[\"sliding_attention\"]", "layer_types: must list \"sliding_attention\" or \"full_attention\" for each of the 4 layers" },
        { "gemma2", "layer_types", "[\"sliding_attention\", \"full_attention\", \"full_attention\", \"sliding_attention\"]", "layer_types: layer 2 breaks the pattern" },
        { "gemma3", "attn_logit_softcapping", "50.0", "attn_logit_softcapping: 50 is not supported for gemma3" },
        { "gemma3", "final_logit_softcapping", "30.0", "final_logit_softcapping: 30 is not supported for gemma3" },
        { "gemma3", "rope_local_base_freq", "-1", "rope_local_base_freq: must be above 1" },
        { "gemma3", "sliding_window_pattern", "0", "sliding_window_pattern: must be between 1 and 4096; got 0" },
        { "gemma3", "rope_parameters", """{"full_attention": {"rope_type": "yarn", "factor": 8.0}}""", "rope_parameters.full_attention.rope_type: \"yarn\" is not supported" },
    };

    [Theory]
    [MemberData(nameof(HostileConfigs))]
    public void HostileGemmaConfigsAreRefusedByName(string arch, string key, string json, string expected)
    {
        var e = Assert.Throws<ModelFormatException>(() => Parse(With(arch == "gemma2" ? Gemma2() : Gemma3(), key, JsonNode.Parse(json))));
        Assert.Contains(expected, e.Message);
    }
}
