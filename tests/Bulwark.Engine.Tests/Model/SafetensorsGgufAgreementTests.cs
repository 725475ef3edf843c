using Bulwark.Engine.Formats;
using Bulwark.Engine.Kernels.Reference;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Model.Reference;
using Bulwark.Engine.Synthesis;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Model;

/// <summary>
/// One synthetic model written as GGUF (llama.cpp's layout: llama q/k rows in adjacent pairs) and
/// as a Hugging Face folder (rotate-half rows), loaded through <see cref="ModelLoader"/>: the two
/// must compute the same logits for every architecture, weight type and head arrangement.
/// </summary>
public class SafetensorsGgufAgreementTests
{
    public static TheoryData<string, GgmlType, bool, int> Shapes()
    {
        var data = new TheoryData<string, GgmlType, bool, int>();
        foreach (var arch in SyntheticModelSpec.Architectures)
        foreach (var type in new[] { GgmlType.F32, GgmlType.F16, GgmlType.BF16 })
            data.Add(arch, type, type == GgmlType.F16, type == GgmlType.BF16 ? 1 : 2);
        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void GgufAndSafetensorsOfTheSameModelGiveTheSameLogits(string arch, GgmlType type, bool tied, int kvHeads)
    {
        var dir = Fixtures.NewTempDirectory();
        var spec = new SyntheticModelSpec { Architecture = arch, DType = type, TiedOutput = tied, Heads = 4, KvHeads = kvHeads, Seed = 7 };
        SyntheticModel.WriteGguf(spec, Path.Combine(dir, "m.gguf"));
        SyntheticModel.WriteSafetensors(spec, Path.Combine(dir, "hf"));
        using var gguf = ModelLoader.Load(Path.Combine(dir, "m.gguf"));
        using var hf = ModelLoader.Load(Path.Combine(dir, "hf"));
        Assert.Equal(RopeLayout.RotateHalf, hf.Config.RopeLayout);
        Assert.Equal(type, (hf.Weights.Layers[0].Up ?? hf.Weights.Layers[0].Experts!.Up[0]).Type);
        // The same config apart from the RoPE layout (which is the point of the test).
        Assert.Equal(gguf.Config with { RopeLayout = RopeLayout.RotateHalf }, hf.Config);
        AssertSameLogits(gguf, hf, 16, $"{arch} {type}");
        Directory.Delete(dir, true);
    }

    /// <summary>The two models' logits at each of <paramref name="positions"/> positions of one token stream agree within 1e-4 of the largest.</summary>
    internal static void AssertSameLogits(Bulwark.Engine.Model.LlamaModel gguf, Bulwark.Engine.Model.LlamaModel hf, int positions, string label)
    {
        using var a = new LlamaSession(gguf, positions);
        using var b = new LlamaSession(hf, positions);
        for (var pos = 0; pos < positions; pos++)
        {
            var token = (pos * 37 + 5) % gguf.Config.VocabularySize;
            var x = a.Forward(token, pos).ToArray();
            var y = b.Forward(token, pos);
            var scale = x.Max(Math.Abs);
            for (var v = 0; v < x.Length; v++)
                Assert.True(Math.Abs(x[v] - y[v]) <= 1e-4 * scale, $"{label} pos {pos} token {v}: gguf {x[v]} safetensors {y[v]}");
        }
    }
}
