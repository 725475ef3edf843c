using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Model.Reference;
using Bulwark.Engine.Synthesis;
using Bulwark.Testing;
using LLama.Native;
using Xunit.Abstractions;

namespace Bulwark.Engine.Tests.Parity;

/// <summary>
/// Gemma 2 and Gemma 3 against llama.cpp on shapes that exercise what they add: a 100-token prompt crosses the
/// window of 16 six times; Gemma 2 with caps small enough (attention 2, logits 5) that tanh bends every score
/// and logit; Gemma 3 with seven layers (layer 5 global, the rest local), global RoPE base 10⁶ with linear
/// scaling 8 against the local layers' 10⁴. F32 is held to the same 1e-3 as the other architectures (though
/// llama.cpp's GELU reads a table of f16 inputs and outputs, ours is computed), a Q4_K_M file written by
/// llama.cpp's quantizer to the quantized bar. The Hugging Face folder of each gives the GGUF's logits.
/// </summary>
public class LlamaCppGemmaParityTests(ITestOutputHelper output)
{
    private const int PromptLength = 100;

    public static SyntheticModelSpec Spec(string arch, int dim = 64, int ff = 128) => new()
    {
        Architecture = arch,
        Layers = arch == "gemma2" ? 3 : 7,
        Dim = dim,
        Heads = 4,
        KvHeads = arch == "gemma2" ? 2 : 1,
        FeedForward = ff,
        Vocab = 320,
        Context = 128,
        SlidingWindow = 16,
        AttentionSoftCap = arch == "gemma2" ? 2f : null,
        FinalSoftCap = arch == "gemma2" ? 5f : null,
        RopeTheta = arch == "gemma3" ? 1_000_000f : 10000f,
        RopeScaling = arch == "gemma3" ? new RopeScaling(RopeScalingKind.Linear, 8f) : RopeScaling.None,
        RmsNormEpsilon = 1e-6f,
        Seed = arch == "gemma2" ? 2200u : 2300u,
    };

    [Theory]
    [InlineData("gemma2")]
    [InlineData("gemma3")]
    public void F32LogitsMatchLlamaCppAcrossTheWindow(string arch)
    {
        var spec = Spec(arch);
        var dir = Fixtures.NewTempDirectory();
        try
        {
            var path = Path.Combine(dir, "model.gguf");
            SyntheticModel.WriteGguf(spec, path);
            var prompt = LlamaCppParityTests.Prompt(spec.Vocab, spec.Seed);
            var theirs = LlamaCppOracle.Logits(path, prompt);
            var ours = LlamaCppParityTests.OurLogits(path, prompt);
            double worst = 0;
            for (var p = 0; p < PromptLength; p++)
            {
                var m = LogitDifference.Of(ours[p], theirs[p]);
                worst = Math.Max(worst, m.MaxDiff / m.MaxAbs);
                Assert.Equal(m.TheirArgMax, m.OurArgMax);
                Assert.True(m.MaxDiff <= 1e-3 * m.MaxAbs, $"position {p}: max |ours - llama.cpp| = {m.MaxDiff} exceeds 1e-3 × max |logit| ({m.MaxAbs})");
            }
            output.WriteLine($"{arch} F32: worst max|Δ| / max|logit| over {PromptLength} positions = {worst:0.0e+0}");

            // The Hugging Face folder of the same model: the same logits.
            var folder = Path.Combine(dir, "hf");
            SyntheticModel.WriteSafetensors(spec, folder);
            using var hf = ModelLoader.Load(folder);
            using var session = new LlamaSession(hf, PromptLength);
            for (var p = 0; p < PromptLength; p++)
            {
                var row = session.Forward(prompt[p], p);
                var scale = ours[p].Max(MathF.Abs);
                for (var v = 0; v < row.Length; v++)
                    Assert.True(MathF.Abs(row[v] - ours[p][v]) <= 1e-5f * scale, $"{arch} position {p} logit {v}: safetensors {row[v]} gguf {ours[p][v]}");
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Theory]
    [InlineData("gemma2")]
    [InlineData("gemma3")]
    public void LlamaCppsQ4KMFileMatchesLlamaCpp(string arch)
    {
        var spec = Spec(arch, dim: 256, ff: 512); // multiples of 256, so llama.cpp keeps the K-quants
        var dir = Fixtures.NewTempDirectory();
        try
        {
            var source = Path.Combine(dir, "f32.gguf");
            var path = Path.Combine(dir, "q4_k_m.gguf");
            SyntheticModel.WriteGguf(spec, source);
            LlamaCppQuantizer.Quantize(source, path, LLamaFtype.MOSTLY_Q4_K_M);
            using (var file = GgufFile.Open(path))
                Assert.Contains(GgmlType.Q4_K, file.Tensors.Select(t => t.Type));
            var prompt = LlamaCppParityTests.Prompt(spec.Vocab, spec.Seed);
            var theirs = LlamaCppOracle.Logits(path, prompt);
            var ours = LlamaCppParityTests.OurLogits(path, prompt);
            var agree = 0;
            var worst = 1.0;
            for (var p = 0; p < PromptLength; p++)
            {
                var m = LogitDifference.Of(ours[p], theirs[p]);
                worst = Math.Min(worst, m.Cosine);
                Assert.True(m.Cosine >= 0.999, $"position {p}: cosine {m.Cosine} below 0.999");
                if (m.OurArgMax == m.TheirArgMax) agree++;
                else Assert.True(theirs[p][m.TheirArgMax] - theirs[p][m.OurArgMax] <= m.MaxDiff,
                    $"position {p}: we pick {m.OurArgMax}, llama.cpp {m.TheirArgMax}, whose logits differ by more than the largest logit error {m.MaxDiff}");
            }
            output.WriteLine($"{arch} Q4_K_M: worst cosine {worst:0.000000}, greedy agreement {agree}/{PromptLength}");
            Assert.True(agree >= Math.Ceiling(0.99 * PromptLength), $"greedy choice agrees at {agree} of {PromptLength} positions; need 99%");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
