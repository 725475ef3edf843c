using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Synthesis;
using Bulwark.Testing;
using LLama.Native;
using Xunit.Abstractions;

namespace Bulwark.Engine.Tests.Parity;

/// <summary>
/// The file types people download, written by llama.cpp's own quantizer from a synthetic F32 model:
/// our logits against llama.cpp's on the same file, with the quantized parity's bar (cosine ≥ 0.999
/// at every position, the same greedy choice at 99% of them), and the tensor types the file holds.
/// Dimensions are multiples of 256 so llama.cpp keeps the K-quants instead of falling back.
/// </summary>
public class LlamaCppQuantizedParityTests(ITestOutputHelper output)
{
    private const int PromptLength = 100;

    public static TheoryData<LLamaFtype, GgmlType[]> Files() => new()
    {
        { LLamaFtype.MOSTLY_Q4_K_M, [GgmlType.Q4_K, GgmlType.Q6_K] },
        { LLamaFtype.MOSTLY_Q5_K_M, [GgmlType.Q5_K, GgmlType.Q6_K] },
        { LLamaFtype.MOSTLY_Q6_K, [GgmlType.Q6_K] },
        { LLamaFtype.MOSTLY_Q3_K_M, [GgmlType.Q3_K, GgmlType.Q5_K] },
        { LLamaFtype.MOSTLY_Q2_K, [GgmlType.Q2_K] },
        { LLamaFtype.MOSTLY_Q5_0, [GgmlType.Q5_0] },
        { LLamaFtype.MOSTLY_Q4_1, [GgmlType.Q4_1] },
        { LLamaFtype.MOSTLY_Q5_1, [GgmlType.Q5_1] },
        { LLamaFtype.MOSTLY_IQ4_NL, [GgmlType.IQ4_NL] },
        { LLamaFtype.MOSTLY_IQ4_XS, [GgmlType.IQ4_XS] },
    };

    private static SyntheticModelSpec Spec() => new()
    {
        Layers = 2,
        Dim = 256,
        Heads = 4,
        KvHeads = 2,
        FeedForward = 512,
        Vocab = 320,
        Context = 128,
        DType = GgmlType.F32,
        Seed = 1900,
    };

    [Theory]
    [MemberData(nameof(Files))]
    public void LogitsOfLlamaCppsQuantizedFileMatchLlamaCpp(LLamaFtype ftype, GgmlType[] holds)
    {
        var spec = Spec();
        var dir = Fixtures.NewTempDirectory();
        try
        {
            var source = Path.Combine(dir, "f32.gguf");
            var path = Path.Combine(dir, "quantized.gguf");
            SyntheticModel.WriteGguf(spec, source);
            LlamaCppQuantizer.Quantize(source, path, ftype);
            using (var file = GgufFile.Open(path))
            {
                var types = file.Tensors.Select(t => t.Type).ToHashSet();
                output.WriteLine($"{ftype}: tensor types {string.Join(", ", types.Order())}");
                foreach (var type in holds) Assert.Contains(type, types);
            }
            var prompt = LlamaCppParityTests.Prompt(spec.Vocab, spec.Seed);
            var theirs = LlamaCppOracle.Logits(path, prompt);
            var ours = LlamaCppParityTests.OurLogits(path, prompt);
            var agree = 0;
            var worst = 1.0;
            for (var p = 0; p < PromptLength; p++)
            {
                var m = LogitDifference.Of(ours[p], theirs[p]);
                worst = Math.Min(worst, m.Cosine);
                if (m.OurArgMax == m.TheirArgMax) agree++;
                else Assert.True(theirs[p][m.TheirArgMax] - theirs[p][m.OurArgMax] <= m.MaxDiff,
                    $"position {p}: we pick {m.OurArgMax}, llama.cpp {m.TheirArgMax}, whose logits differ by more than the largest logit error {m.MaxDiff}");
                Assert.True(m.Cosine >= 0.999, $"position {p}: cosine {m.Cosine} below 0.999");
            }
            output.WriteLine($"{ftype}: greedy agrees at {agree}/{PromptLength}, worst cosine {worst:0.000000}");
            Assert.True(agree >= Math.Ceiling(0.99 * PromptLength), $"greedy choice agrees at {agree} of {PromptLength} positions; need 99%");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
