using Bulwark.Engine.Formats;
using Bulwark.Engine.Synthesis;
using LLama.Native;
using Xunit.Abstractions;
using static Bulwark.Engine.Tests.Parity.LlamaCppArchitectureParityTests;

namespace Bulwark.Engine.Tests.Parity;

/// <summary>
/// Mixtral (GGUF arch llama with experts) and Qwen3-MoE against llama.cpp on the same GGUF, over 100 positions:
/// written by our generator at F32 (logits within 1e-3 of the largest) and quantized by llama.cpp's own quantizer
/// to Q4_K_M and Q8_0 (cosine ≥ 0.999 at every position, the same greedy choice at 99%, disagreements near ties
/// only). The same tensors routed with the wrong number of experts per token must miss llama.cpp, or the
/// routing would be untested.
/// </summary>
public class LlamaCppMixtureOfExpertsParityTests(ITestOutputHelper output)
{
    /// <summary>K-quant rows need 256 columns: dim and expert width 256, 8 experts, 2 per token (Mixtral's), 2 layers.</summary>
    public static SyntheticModelSpec Spec(string name) => name switch
    {
        "mixtral" => new()
        {
            Architecture = "llama", Layers = 2, Dim = 256, Heads = 8, KvHeads = 2, FeedForward = 256, Vocab = 320, Context = 128,
            Experts = 8, ExpertsUsed = 2, Seed = 1910,
        },
        "qwen3moe" => Spec("mixtral") with { Architecture = "qwen3moe", Experts = 6, ExpertsUsed = 3, Seed = 1920 },
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "no such model"),
    };

    public static TheoryData<string> Models() => new() { "mixtral", "qwen3moe" };

    /// <summary>The same tensors (seeded by name) routed to one expert fewer per token.</summary>
    [Theory]
    [MemberData(nameof(Models))]
    public void F32LogitsMatchLlamaCppAndTheWrongExpertCountDoesNot(string name) =>
        AssertF32Parity(Spec(name), Spec(name) with { ExpertsUsed = Spec(name).ExpertsUsedCount - 1 }, name, "with k - 1 experts", output);

    public static TheoryData<string, string> QuantizedCases() => new()
    {
        { "mixtral", "Q4_K_M" }, { "mixtral", "Q8_0" }, { "qwen3moe", "Q4_K_M" }, { "qwen3moe", "Q8_0" },
    };

    [Theory]
    [MemberData(nameof(QuantizedCases))]
    public void LlamaCppsQuantizedFilesMatchLlamaCpp(string name, string type)
    {
        var (ftype, expected) = type == "Q8_0" ? (LLamaFtype.MOSTLY_Q8_0, GgmlType.Q8_0) : (LLamaFtype.MOSTLY_Q4_K_M, GgmlType.Q4_K);
        // The experts themselves are quantized (llama.cpp leaves the router in F32).
        AssertQuantizedParity(Spec(name), ftype, file => Assert.Equal(expected, file.Tensors.Single(t => t.Name == "blk.0.ffn_gate_exps.weight").Type),
            $"{name} {type}", output);
    }
}
