using Bulwark.Engine.Evaluation;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Model.Reference;
using Bulwark.Engine.Synthesis;
using Bulwark.Testing;
using Xunit.Abstractions;

namespace Bulwark.Engine.Tests.Parity;

/// <summary>
/// Our forward pass against llama.cpp's on synthetic GGUF models: every architecture × weight
/// type, over MHA, GQA 4:1 and MQA, tied and untied heads; logits at every position of a
/// 100-token prompt decoded by llama.cpp as one batch (more than the 32 the issue asks for, so
/// that "the same greedy choice at 99% of positions" can tolerate one near-tie in a quantized
/// model, and only where the reference's own top-2 gap is within the measured logit error).
/// </summary>
public class LlamaCppParityTests(ITestOutputHelper output)
{
    private const int PromptLength = 100;

    /// <summary>
    /// Each architecture with each weight type; the attention shape and the head tying rotate
    /// through the cases so every shape meets every architecture and both head kinds.
    /// </summary>
    public static TheoryData<string, GgmlType, string, bool> Cases()
    {
        var data = new TheoryData<string, GgmlType, string, bool>();
        string[] shapes = ["mha", "gqa", "mqa"];
        var i = 0;
        foreach (var arch in SyntheticModelSpec.Architectures)
        foreach (var type in SyntheticModelSpec.DTypes)
        {
            data.Add(arch, type, shapes[i % 3], i % 2 == 1);
            i++;
        }
        return data;
    }

    public static SyntheticModelSpec Spec(string arch, GgmlType type, string shape, bool tied) => new()
    {
        Architecture = arch,
        DType = type,
        TiedOutput = tied,
        Layers = 2,
        Dim = 64,
        Heads = shape == "mha" ? 4 : 8,
        KvHeads = shape switch { "mha" => 4, "gqa" => 2, _ => 1 },
        FeedForward = 96,
        Vocab = 320,
        Context = 128,
        Seed = (ulong)(1000 + SyntheticModelSpec.Architectures.ToList().IndexOf(arch) * 10 + (int)type),
    };

    /// <summary>A prompt of ids spread over the whole vocabulary, specials included.</summary>
    public static int[] Prompt(int vocab, ulong seed)
    {
        var random = new Random((int)seed);
        return Enumerable.Range(0, PromptLength).Select(_ => random.Next(vocab)).ToArray();
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void LogitsAtEveryPositionMatchLlamaCpp(string arch, GgmlType type, string shape, bool tied)
    {
        var spec = Spec(arch, type, shape, tied);
        var dir = Fixtures.NewTempDirectory();
        var path = Path.Combine(dir, "model.gguf");
        SyntheticModel.WriteGguf(spec, path);
        var prompt = Prompt(spec.Vocab, spec.Seed);
        var theirs = LlamaCppOracle.Logits(path, prompt);
        var ours = OurLogits(path, prompt);
        Directory.Delete(dir, true);

        var agree = 0;
        for (var p = 0; p < PromptLength; p++)
        {
            var m = LogitDifference.Of(ours[p], theirs[p]);
            output.WriteLine($"pos {p,2}: max|logit| {m.MaxAbs,7:0.000} max|Δ| {m.MaxDiff:0.0e+0} cosine {m.Cosine:0.000000} argmax {m.OurArgMax}/{m.TheirArgMax}");
            if (m.OurArgMax == m.TheirArgMax) agree++;
            else Assert.True(theirs[p][m.TheirArgMax] - theirs[p][m.OurArgMax] <= m.MaxDiff,
                $"position {p}: we pick {m.OurArgMax}, llama.cpp {m.TheirArgMax}, whose logits differ by more than the largest logit error {m.MaxDiff}");
            if (type is GgmlType.F32 or GgmlType.F16)
            {
                Assert.True(m.MaxDiff <= 1e-3 * m.MaxAbs, $"position {p}: max |ours - llama.cpp| = {m.MaxDiff} exceeds 1e-3 × max |logit| ({m.MaxAbs})");
            }
            else
            {
                // llama.cpp rounds activations to the weight's 16-bit or 8-bit form inside its matmuls.
                Assert.True(m.Cosine >= 0.999, $"position {p}: cosine {m.Cosine} below 0.999");
            }
        }
        Assert.True(agree >= Math.Ceiling(0.99 * PromptLength), $"greedy choice agrees at {agree} of {PromptLength} positions; need 99%");
    }

    internal static float[][] OurLogits(string path, IReadOnlyList<int> prompt)
    {
        using var model = GgufModelLoader.Load(path);
        using var session = new LlamaSession(model, prompt.Count);
        return prompt.Select((token, position) => session.Forward(token, position).ToArray()).ToArray();
    }
}

/// <summary>How two logit rows differ: the largest reference magnitude and difference, cosine, and both argmaxes.</summary>
internal readonly record struct LogitDifference(double MaxAbs, double MaxDiff, double Cosine, int OurArgMax, int TheirArgMax)
{
    public static LogitDifference Of(float[] ours, float[] theirs)
    {
        Assert.Equal(theirs.Length, ours.Length);
        double maxAbs = 0, maxDiff = 0;
        for (var v = 0; v < ours.Length; v++)
        {
            maxAbs = Math.Max(maxAbs, Math.Abs(theirs[v]));
            maxDiff = Math.Max(maxDiff, Math.Abs(ours[v] - theirs[v]));
        }
        return new LogitDifference(maxAbs, maxDiff, LogitComparison.Cosine(ours, theirs), LogitComparison.Argmax(ours), LogitComparison.Argmax(theirs));
    }
}
