using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Synthesis;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Model;

/// <summary>
/// The metadata the newer architectures add (Llama 3's rope_freqs.weight, ...) checked at load: each
/// missing or invalid value is refused with a <see cref="ModelFormatException"/> naming the field and the value.
/// </summary>
public sealed class ArchitectureMetadataTests : IDisposable
{
    private readonly string _dir = Fixtures.NewTempDirectory("arch-metadata");

    /// <summary>A valid generated GGUF of <paramref name="spec"/> rewritten with the given changes; returns the refusal.</summary>
    private ModelFormatException Refused(SyntheticModelSpec spec, IReadOnlyDictionary<string, GgufValue?>? metadata = null,
        IReadOnlyDictionary<string, GgufEdit.Tensor?>? tensors = null) => GgufEdit.Refusal(_dir, spec, metadata, tensors);

    private static SyntheticModelSpec Llama3 => Tests.Model.ArchitectureAgreementTests.Spec("llama3", GgmlType.F32);

    [Theory]
    [InlineData(float.NaN, "factor 2 must be a finite number above 0; got NaN")]
    [InlineData(0f, "factor 2 must be a finite number above 0; got 0")]
    [InlineData(-1f, "factor 2 must be a finite number above 0; got -1")]
    [InlineData(float.PositiveInfinity, "factor 2 must be a finite number above 0; got ")]
    public void Llama3FactorsThatAreNotPositiveFiniteNumbersAreRefused(float bad, string message)
    {
        var e = Refused(Llama3, tensors: new Dictionary<string, GgufEdit.Tensor?> { ["rope_freqs.weight"] = GgufEdit.Tensor.F32(1f, 2f, bad, 8f) });
        Assert.Equal("rope_freqs.weight", e.Field);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Llama3FactorsOfTheWrongCountAreRefused()
    {
        var e = Refused(Llama3, tensors: new Dictionary<string, GgufEdit.Tensor?> { ["rope_freqs.weight"] = GgufEdit.Tensor.F32(1f, 2f, 8f) });
        Assert.Contains("must be F32 [4]; got F32 [3]", e.Message);
    }

    private static SyntheticModelSpec Phi3 => ArchitectureAgreementTests.Spec("phi3-long", GgmlType.F32);

    public static TheoryData<string, string?, string> Phi3FactorTensors() => new()
    {
        { "rope_factors_short.weight", null, "rope_factors_short.weight: tensor is missing (LongRoPE needs both the short and the long factors)" },
        { "rope_factors_long.weight", null, "rope_factors_long.weight: tensor is missing (LongRoPE needs both the short and the long factors)" },
        { "rope_factors_long.weight", "7", "rope_factors_long.weight: must be F32 [8]; got F32 [7]" },
        { "rope_factors_short.weight", "nan", "rope_factors_short.weight: factor 2 must be a finite number above 0; got NaN" },
        { "rope_factors_long.weight", "0", "rope_factors_long.weight: factor 2 must be a finite number above 0; got 0" },
    };

    [Theory]
    [MemberData(nameof(Phi3FactorTensors))]
    public void Phi3LongRopeFactorsMissingOrInvalidAreRefused(string tensor, string? change, string message)
    {
        float[] Values(float third, int count = 8) => Enumerable.Range(0, count).Select(i => i == 2 ? third : 1f + i).ToArray();
        GgufEdit.Tensor? replacement = change switch
        {
            null => null,
            "7" => GgufEdit.Tensor.F32(Values(3f, 7)),
            "nan" => GgufEdit.Tensor.F32(Values(float.NaN)),
            _ => GgufEdit.Tensor.F32(Values(0f)),
        };
        var e = Refused(Phi3, tensors: new Dictionary<string, GgufEdit.Tensor?> { [tensor] = replacement });
        Assert.Contains(message, e.Message);
    }

    [Theory]
    [InlineData("phi3.rope.scaling.attn_factor", "0", "phi3.rope.scaling.attn_factor: must be above 0 and at most 100; got 0")]
    [InlineData("phi3.rope.scaling.attn_factor", "nan", "phi3.rope.scaling.attn_factor: must be above 0 and at most 100; got NaN")]
    [InlineData("phi3.rope.scaling.original_context_length", "0", "phi3.rope.scaling.original_context_length: must be between 1 and 16777216; got 0")]
    [InlineData("phi3.rope.scaling.type", "yarn", "phi3.rope.scaling.type: \"yarn\" is not supported for phi3")]
    public void Phi3RopeMetadataOutOfRangeIsRefused(string key, string value, string message)
    {
        var spec = key.EndsWith(".type", StringComparison.Ordinal) ? Phi3 with { RopeScaling = Bulwark.Engine.Model.Config.RopeScaling.None } : Phi3;
        GgufValue replacement = key.EndsWith("attn_factor", StringComparison.Ordinal) ? GgufValue.Of(value == "nan" ? float.NaN : 0f)
            : key.EndsWith(".type", StringComparison.Ordinal) ? GgufValue.Of(value) : GgufValue.Of(0u);
        var e = Refused(spec, metadata: new Dictionary<string, GgufValue?> { [key] = replacement });
        Assert.Contains(message, e.Message);
    }

    [Theory]
    [InlineData(0u, 64)]   // no window
    [InlineData(32u, 32)]  // Phi-3-mini-4k's kind: served up to the window, where llama.cpp's full attention and transformers' window agree
    [InlineData(1000u, 64)]
    public void APhi3SlidingWindowBelowTheContextCapsIt(uint window, int context)
    {
        var valid = Path.Combine(_dir, "valid.gguf");
        var edited = Path.Combine(_dir, "edited.gguf");
        SyntheticModel.WriteGguf(Phi3, valid);
        GgufEdit.Rewrite(valid, edited, new Dictionary<string, GgufValue?> { ["phi3.attention.sliding_window"] = GgufValue.Of(window) });
        using var model = GgufModelLoader.Load(edited);
        Assert.Equal(context, model.Config.ContextLength);
    }

    [Fact]
    public void Phi3FoldersLongRopeIsReadAsTransformersReadsIt()
    {
        var folder = Path.Combine(_dir, "hf");
        SyntheticModel.WriteSafetensors(Phi3, folder);
        var path = Path.Combine(folder, "config.json");
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!;
        var c = Bulwark.Engine.Model.Config.HfConfig.Read(path);
        Assert.Equal((Bulwark.Engine.Model.Config.ModelArchitecture.Phi3, Bulwark.Engine.Model.Config.RopeScalingKind.LongRope, 8), (c.Architecture, c.RopeScaling.Kind, c.RopeScaling.OriginalContextLength));
        Assert.Equal(MathF.Sqrt(2f), c.RopeScaling.AttentionFactor, 6);
        Assert.Equal(Phi3.RopeScaling.LongFactors, c.RopeScaling.LongFactors);

        ModelFormatException RefusedWith(Action<System.Text.Json.Nodes.JsonNode> change)
        {
            var edited = System.Text.Json.Nodes.JsonNode.Parse(config.ToJsonString())!;
            change(edited);
            File.WriteAllText(path, edited.ToJsonString());
            return Assert.Throws<ModelFormatException>(() => Bulwark.Engine.Model.Config.HfConfig.Read(path));
        }
        Assert.Contains("rope_scaling.short_factor: is missing (LongRoPE needs 8 factors, one per rotated pair)",
            RefusedWith(n => n["rope_scaling"]!.AsObject().Remove("short_factor")).Message);
        Assert.Contains("rope_scaling.long_factor: must be an array of 8 numbers (one per rotated pair of head_dim 16); got [1,2]",
            RefusedWith(n => n["rope_scaling"]!["long_factor"] = new System.Text.Json.Nodes.JsonArray(1, 2)).Message);
        Assert.Contains("rope_scaling.long_factor: entry 0 must be a number above 0 and at most 1000000; got -1",
            RefusedWith(n => n["rope_scaling"]!["long_factor"]![0] = -1).Message);
        Assert.Contains("original_max_position_embeddings: must be between 1 and 16777216; got 0",
            RefusedWith(n => n["original_max_position_embeddings"] = 0).Message);

        // An explicit attention factor wins over the derived one; "su" is the older name; a window below the context caps it.
        var explicitFactor = System.Text.Json.Nodes.JsonNode.Parse(config.ToJsonString())!;
        explicitFactor["rope_scaling"]!["attention_factor"] = 1.25;
        explicitFactor["rope_scaling"]!["type"] = "su";
        explicitFactor["sliding_window"] = 40;
        File.WriteAllText(path, explicitFactor.ToJsonString());
        var read = Bulwark.Engine.Model.Config.HfConfig.Read(path);
        Assert.Equal((1.25f, Bulwark.Engine.Model.Config.RopeScalingKind.LongRope, 40), (read.RopeScaling.AttentionFactor, read.RopeScaling.Kind, read.ContextLength));
    }

    [Fact]
    public void APhi3GgufWithSeparateQueryKeyValueGivesTheFusedOnesLogits()
    {
        // llama.cpp reads either attn_qkv or attn_q/k/v for phi3; split the fused rows into the three and compare.
        var fused = Path.Combine(_dir, "fused.gguf");
        var separate = Path.Combine(_dir, "separate.gguf");
        SyntheticModel.WriteGguf(Phi3, fused);
        var tensors = new Dictionary<string, GgufEdit.Tensor?>();
        using (var file = GgufFile.Open(fused))
        {
            var (q, kv, dim) = (Phi3.Heads * Phi3.HeadDim, Phi3.KvHeads * Phi3.HeadDim, Phi3.Dim);
            for (var l = 0; l < Phi3.Layers; l++)
            {
                Assert.True(file.TryGetTensor($"blk.{l}.attn_qkv.weight", out var info));
                var bytes = file.TensorBytes(info).ToArray();
                var row = dim * 4;
                tensors[$"blk.{l}.attn_qkv.weight"] = null;
                tensors[$"blk.{l}.attn_q.weight"] = new(GgmlType.F32, [dim, q], bytes[..(q * row)]);
                tensors[$"blk.{l}.attn_k.weight"] = new(GgmlType.F32, [dim, kv], bytes[(q * row)..((q + kv) * row)]);
                tensors[$"blk.{l}.attn_v.weight"] = new(GgmlType.F32, [dim, kv], bytes[((q + kv) * row)..]);
            }
        }
        GgufEdit.Rewrite(fused, separate, tensors: tensors);
        using var a = GgufModelLoader.Load(fused);
        using var b = GgufModelLoader.Load(separate);
        SafetensorsGgufAgreementTests.AssertSameLogits(a, b, 12, "phi3 fused vs separate q/k/v");
    }

    [Fact]
    public void APhi3FusedMatrixOfTheWrongShapeIsRefusedNamingIt()
    {
        var (dim, ff) = (Phi3.Dim, Phi3.FeedForward);
        var e = Refused(Phi3, tensors: new Dictionary<string, GgufEdit.Tensor?>
        {
            ["blk.1.ffn_up.weight"] = new(GgmlType.F32, [dim, ff], new byte[dim * ff * 4]),
        });
        Assert.Equal("blk.1.ffn_up.weight", e.Field);
        Assert.Contains($"shape [{ff}, {dim}] does not match the config's [{2 * ff}, {dim}]", e.Message);
        var q = Refused(Phi3, tensors: new Dictionary<string, GgufEdit.Tensor?> { ["blk.0.attn_qkv.weight"] = null });
        Assert.Equal(("blk.0.attn_qkv.weight", true), (q.Field, q.Message.EndsWith("tensor is missing", StringComparison.Ordinal)));
    }

    public void Dispose() => Directory.Delete(_dir, true);
}
