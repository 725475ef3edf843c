using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Synthesis;
using Bulwark.Testing;
using LLama.Native;
using Xunit.Abstractions;

namespace Bulwark.Engine.Tests.Parity;

/// <summary>
/// The architectures beyond plain Llama/Qwen against llama.cpp on the same GGUF: each written by our
/// generator at F32 (logits within 1e-3 of the largest, as the F32 parity) and quantized by llama.cpp's own
/// quantizer to Q4_K_M (cosine ≥ 0.999 at every position, the same greedy choice at 99%), over 100 positions.
/// Each model also runs once without the feature under test, to show the feature changes the logits: a test
/// that passed with the feature ignored would prove nothing.
/// </summary>
public class LlamaCppArchitectureParityTests(ITestOutputHelper output)
{
    private const int PromptLength = 100;

    /// <summary>Llama 3.x as downloaded: llama3 RoPE scaling, theta 500000, tied embeddings (3.2 1B/3B), GQA 4:1.</summary>
    public static SyntheticModelSpec Llama3(GgmlType type = GgmlType.F32) => new()
    {
        Architecture = "llama",
        Layers = 2,
        Dim = 256,
        Heads = 8,
        KvHeads = 2,
        FeedForward = 512,
        Vocab = 320,
        Context = 128,
        DType = type,
        TiedOutput = true,
        RopeTheta = 500000f,
        // original context 32: pair 0 keeps its frequency, pair 1 is blended, the rest are divided by 8, all within 100 positions.
        RopeScaling = new RopeScaling(RopeScalingKind.Llama3, 8f, 1f, 4f, 32),
        Seed = 3100,
    };

    /// <summary>SmolLM3: four layers, so layer 3 is one without RoPE (llama.cpp's fixed step of 4).</summary>
    public static SyntheticModelSpec SmolLM3() => Llama3() with
    {
        Architecture = "smollm3", Layers = 4, TiedOutput = false, RopeTheta = 10000f, RopeScaling = RopeScaling.None, Seed = 3200,
    };

    /// <summary>
    /// Phi-3 with LongRoPE (fused q/k/v with GQA, fused gate/up). Original context 32, below llama.cpp's context of 100
    /// (or more, if it pads): the long factors and the attention factor √(1 + ln 4 / ln 32) apply. With an original
    /// context of 4096 the short ones do, and the attention factor is 1 (context 128 / 4096 ≤ 1).
    /// </summary>
    public static SyntheticModelSpec Phi3(int originalContext) => Llama3() with
    {
        Architecture = "phi3", TiedOutput = false, RopeTheta = 10000f, Seed = 3300,
        RopeScaling = SyntheticRope.LongRope(32, originalContext, 8f),
    };

    public static TheoryData<string> Models() => new() { "llama3", "smollm3", "phi3-long", "phi3-short" };

    private static SyntheticModelSpec Spec(string name) => name switch
    {
        "llama3" => Llama3(),
        "smollm3" => SmolLM3(),
        "phi3-long" => Phi3(32),
        "phi3-short" => Phi3(4096),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "no such model"),
    };

    /// <summary>The same model without the feature the case is about.</summary>
    private static SyntheticModelSpec WithoutFeature(string name) => name switch
    {
        "llama3" => Llama3() with { RopeScaling = RopeScaling.None },
        // The same tensors (seeded by name) as a llama: RoPE in every layer.
        "smollm3" => SmolLM3() with { Architecture = "llama" },
        "phi3-long" => Phi3(32) with { RopeScaling = RopeScaling.None },
        "phi3-short" => Phi3(4096) with { RopeScaling = RopeScaling.None },
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "no such model"),
    };

    [Theory]
    [MemberData(nameof(Models))]
    public void F32LogitsMatchLlamaCpp(string name) => AssertF32Parity(Spec(name), WithoutFeature(name), name, "without the feature", output);

    [Theory]
    [MemberData(nameof(Models))]
    public void Q4KMLogitsOfLlamaCppsQuantizedFileMatchLlamaCpp(string name) =>
        AssertQuantizedParity(Spec(name), LLamaFtype.MOSTLY_Q4_K_M, file => Assert.Contains(GgmlType.Q4_K, file.Tensors.Select(t => t.Type)), $"{name} Q4_K_M", output);

    /// <summary>
    /// <paramref name="spec"/> written at F32: our logits within 1e-3 of llama.cpp's largest at each of 100 positions and the
    /// same greedy choice at 99; <paramref name="without"/> (the model without the feature under test) must miss by more than 0.05.
    /// </summary>
    internal static void AssertF32Parity(SyntheticModelSpec spec, SyntheticModelSpec without, string name, string withoutLabel, ITestOutputHelper output)
    {
        var dir = Fixtures.NewTempDirectory("arch-parity");
        try
        {
            var path = Path.Combine(dir, "model.gguf");
            SyntheticModel.WriteGguf(spec, path);
            var prompt = LlamaCppParityTests.Prompt(spec.Vocab, spec.Seed);
            var theirs = LlamaCppOracle.Logits(path, prompt);
            var stats = Compare(LlamaCppParityTests.OurLogits(path, prompt), theirs);
            output.WriteLine($"{name} F32: worst max|Δ|/max|logit| {stats.WorstRelative:0.0e+0}, greedy {stats.Agree}/{PromptLength}");
            Assert.True(stats.WorstRelative <= 1e-3, $"{name}: at position {stats.WorstPosition} max |ours - llama.cpp| is {stats.WorstRelative:0.0e+0} of the largest logit; the bar is 1e-3");
            Assert.True(stats.Agree >= 99, $"{name}: greedy choice agrees at {stats.Agree} of {PromptLength} positions; need 99%");

            var plain = Path.Combine(dir, "without.gguf");
            SyntheticModel.WriteGguf(without, plain);
            var missed = Compare(LlamaCppParityTests.OurLogits(plain, prompt), theirs);
            output.WriteLine($"{name} {withoutLabel}: worst relative difference {missed.WorstRelative:0.0e+0}");
            Assert.True(missed.WorstRelative > 0.05, $"{name}: the model {withoutLabel} is within {missed.WorstRelative} of llama.cpp, so this case tests nothing");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>
    /// <paramref name="spec"/> at F32 quantized by llama.cpp's own quantizer to <paramref name="ftype"/> (<paramref name="checkFile"/>
    /// sees the result): cosine ≥ 0.999 at each of 100 positions, the same greedy choice at 99, disagreements near ties only.
    /// </summary>
    internal static void AssertQuantizedParity(SyntheticModelSpec spec, LLamaFtype ftype, Action<GgufFile> checkFile, string label, ITestOutputHelper output)
    {
        var dir = Fixtures.NewTempDirectory("arch-parity-q");
        try
        {
            var source = Path.Combine(dir, "f32.gguf");
            var path = Path.Combine(dir, "quantized.gguf");
            SyntheticModel.WriteGguf(spec, source);
            LlamaCppQuantizer.Quantize(source, path, ftype);
            using (var file = GgufFile.Open(path))
                checkFile(file);
            var prompt = LlamaCppParityTests.Prompt(spec.Vocab, spec.Seed);
            var theirs = LlamaCppOracle.Logits(path, prompt);
            var stats = Compare(LlamaCppParityTests.OurLogits(path, prompt), theirs);
            output.WriteLine($"{label}: worst cosine {stats.WorstCosine:0.000000}, greedy {stats.Agree}/{PromptLength}");
            Assert.True(stats.WorstCosine >= 0.999, $"{label}: cosine {stats.WorstCosine} below 0.999");
            Assert.True(stats.Agree >= 99, $"{label}: greedy choice agrees at {stats.Agree} of {PromptLength} positions; need 99%");
            Assert.True(stats.NearTiesOnly, $"{label}: a greedy disagreement is not within the logit error");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>Over every position: the worst relative difference and cosine, greedy agreements, and whether every disagreement is a near-tie.</summary>
    private sealed record Stats(double WorstRelative, int WorstPosition, double WorstCosine, int Agree, bool NearTiesOnly);

    private static Stats Compare(float[][] ours, float[][] theirs)
    {
        var stats = new Stats(0, -1, 1, 0, true);
        for (var p = 0; p < ours.Length; p++)
        {
            var m = LogitDifference.Of(ours[p], theirs[p]);
            var relative = m.MaxDiff / m.MaxAbs;
            var nearTie = m.OurArgMax == m.TheirArgMax || theirs[p][m.TheirArgMax] - theirs[p][m.OurArgMax] <= m.MaxDiff;
            stats = stats with
            {
                WorstRelative = Math.Max(stats.WorstRelative, relative),
                WorstPosition = relative > stats.WorstRelative ? p : stats.WorstPosition,
                WorstCosine = Math.Min(stats.WorstCosine, m.Cosine),
                Agree = stats.Agree + (m.OurArgMax == m.TheirArgMax ? 1 : 0),
                NearTiesOnly = stats.NearTiesOnly && nearTie,
            };
        }
        return stats;
    }
}
