using Bulwark.Engine.Formats;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Synthesis;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Model;

/// <summary>
/// The architectures whose features each format spells differently (Llama 3 scaling: GGUF's rope_freqs.weight
/// factors against config.json's rope_scaling; SmolLM3's NoPE layers: fixed by the GGUF architecture against
/// config.json's no_rope_layers; Phi-3's LongRoPE: GGUF's rope_factors tensors and attn_factor against config.json's
/// factor lists and the attention factor transformers derives; its fused matrices, split as views) give the same logits from the GGUF file and from the Hugging Face
/// folder the generator writes for the same model.
/// </summary>
public class ArchitectureAgreementTests
{
    public static TheoryData<string, GgmlType> Cases() => new()
    {
        { "llama3", GgmlType.F32 },
        { "llama3", GgmlType.BF16 },
        { "smollm3", GgmlType.F32 },
        { "smollm3", GgmlType.F16 },
        { "phi3-long", GgmlType.F32 },
        { "phi3-long", GgmlType.BF16 },
        { "phi3-short", GgmlType.F32 },
    };

    public static SyntheticModelSpec Spec(string name, GgmlType type) => name switch
    {
        "llama3" => new SyntheticModelSpec
        {
            Layers = 2, Dim = 64, Heads = 8, KvHeads = 2, FeedForward = 96, Vocab = 300, Context = 64, DType = type, TiedOutput = true,
            RopeTheta = 500000f, RopeScaling = new RopeScaling(RopeScalingKind.Llama3, 8f, 1f, 4f, 16), Seed = 31,
        },
        "smollm3" => new SyntheticModelSpec
        {
            Architecture = "smollm3", Layers = 5, Dim = 64, Heads = 4, KvHeads = 2, FeedForward = 96, Vocab = 300, Context = 64, DType = type, Seed = 32,
        },
        // Sessions of 24 positions: above an original context of 8 (long factors, attention factor √2), below one of 32 (short, √(1 + ln 2 / ln 32)).
        "phi3-long" or "phi3-short" => new SyntheticModelSpec
        {
            Architecture = "phi3", Layers = 2, Dim = 64, Heads = 4, KvHeads = 2, FeedForward = 96, Vocab = 300, Context = 64, DType = type, Seed = 33,
            RopeScaling = SyntheticRope.LongRope(16, name == "phi3-long" ? 8 : 32, 4f),
        },
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "no such model"),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void GgufAndHuggingFaceFolderGiveTheSameLogits(string name, GgmlType type)
    {
        var dir = Fixtures.NewTempDirectory("arch-agree");
        try
        {
            var spec = Spec(name, type);
            SyntheticModel.WriteGguf(spec, Path.Combine(dir, "m.gguf"));
            SyntheticModel.WriteSafetensors(spec, Path.Combine(dir, "hf"));
            using var gguf = ModelLoader.Load(Path.Combine(dir, "m.gguf"));
            using var hf = ModelLoader.Load(Path.Combine(dir, "hf"));
            Assert.Equal(gguf.Weights.RopeInverseFrequencies.Length, hf.Weights.RopeInverseFrequencies.Length);
            Assert.Equal(gguf.Config.RopeScaling.AttentionFactor, hf.Config.RopeScaling.AttentionFactor);
            SafetensorsGgufAgreementTests.AssertSameLogits(gguf, hf, 24, $"{name} {type}");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Theory]
    [InlineData("m.gguf")]
    [InlineData("hf")]
    public void Phi3sFusedMatricesAreViewsOfTheMappedRowsNotCopies(string file)
    {
        var dir = Fixtures.NewTempDirectory("arch-views");
        try
        {
            var spec = Spec("phi3-long", GgmlType.F32);
            SyntheticModel.WriteGguf(spec, Path.Combine(dir, "m.gguf"));
            SyntheticModel.WriteSafetensors(spec, Path.Combine(dir, "hf"));
            using var model = ModelLoader.Load(Path.Combine(dir, file));
            foreach (var layer in model.Weights.Layers)
            {
                Assert.Equal(layer.Query.Address + layer.Query.Rows * (nint)layer.Query.RowBytes, layer.Key.Address);
                Assert.Equal(layer.Key.Address + layer.Key.Rows * (nint)layer.Key.RowBytes, layer.Value.Address);
                Assert.Equal(layer.Gate!.Address + layer.Gate.Rows * (nint)layer.Gate.RowBytes, layer.Up!.Address);
                Assert.Equal((spec.Heads * spec.HeadDim, spec.KvHeads * spec.HeadDim, spec.FeedForward), (layer.Query.Rows, layer.Value.Rows, layer.Up.Rows));
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Llama3FactorsInGgufGiveTheFrequenciesOfTheConfigsScaling()
    {
        var scaling = new RopeScaling(RopeScalingKind.Llama3, 8f, 1f, 4f, 32);
        var expected = scaling.InverseFrequencies(32, 500000f);
        var fromFactors = RopeScaling.None.InverseFrequencies(32, 500000f, scaling.Llama3FrequencyFactors(32, 500000f));
        for (var i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - fromFactors[i]) <= 1e-6 * expected[i], $"pair {i}: {expected[i]} vs {fromFactors[i]}");
        // The three regions are all present: kept (factor 1), blended, divided by 8.
        var factors = scaling.Llama3FrequencyFactors(32, 500000f);
        Assert.Equal(1f, factors[0]);
        Assert.InRange(factors[1], 1.01f, 7.99f);
        Assert.Equal(8f, factors[^1]);
    }
}
