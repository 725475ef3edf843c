using Bulwark.Engine.Formats;
using Bulwark.Engine.Kernels.Reference;
using Bulwark.Engine.Model;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Model.Reference;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Model;

/// <summary>
/// The 260K checkpoint from every file it comes in — GGUF with and without output.weight, the
/// Hugging Face folder with tied and with explicit lm_head, and that folder split into shards —
/// against llama2.c's run.c (an independent float32 implementation).
/// </summary>
public class Stories260KTests
{
    public const string Sharded = "hf-explicit-lm-head (3 shards)";

    public static readonly string[] Files = ["stories260K-f32.gguf", "stories260K-f32-no-output.gguf", "hf", "hf-explicit-lm-head", Sharded];

    public static TheoryData<string, string> FilesAndCases()
    {
        var data = new TheoryData<string, string>();
        foreach (var file in Files)
        foreach (var name in Stories260KReference.Cases)
            data.Add(file, name);
        return data;
    }

    private static readonly Lazy<string> ShardedFolder = new(() => Stories260KShards.Write(Fixtures.PathOf("model-260k", "hf-explicit-lm-head"), 3));

    /// <summary>Loads one of <see cref="Files"/> through <see cref="ModelLoader"/>, as a user would.</summary>
    public static LlamaModel Load(string file) =>
        ModelLoader.Load(file == Sharded ? ShardedFolder.Value : Fixtures.PathOf("model-260k", file));

    [FixtureTheory]
    [MemberData(nameof(FilesAndCases))]
    public void LogitsOfTheFirstEightPositionsMatchLlama2c(string file, string name)
    {
        var reference = Stories260KReference.Load(name);
        using var model = Load(file);
        using var session = new LlamaSession(model, 64);
        var sequence = reference.PromptIds.Concat(reference.GeneratedIds).ToArray();
        for (var pos = 0; pos < 8; pos++)
        {
            var logits = session.Forward(sequence[pos], pos);
            for (var v = 0; v < 512; v++)
                Assert.True(Math.Abs(logits[v] - reference.Logits[pos][v]) <= 1e-4,
                    $"pos {pos} token {v}: ours {logits[v]} llama2.c {reference.Logits[pos][v]}");
        }
    }

    [FixtureTheory]
    [MemberData(nameof(FilesAndCases))]
    public void GreedyIdsMatchLlama2cUpToTheFirstLowMarginStep(string file, string name)
    {
        var reference = Stories260KReference.Load(name);
        using var model = Load(file);
        var ids = Greedy.Run(model, reference.PromptIds, reference.StepsThatMustMatch);
        Assert.Equal(reference.GeneratedIds.Take(reference.StepsThatMustMatch), ids);
    }

    [FixtureFact]
    public void ConfigIsReadFromGgufMetadata()
    {
        using var model = GgufModelLoader.Load(Fixtures.PathOf("model-260k", "stories260K-f32-no-output.gguf"));
        var c = model.Config;
        Assert.Equal((64, 5, 8, 4, 8, 172, 512, 512), (c.EmbeddingLength, c.LayerCount, c.HeadCount, c.KeyValueHeadCount, c.HeadDim, c.FeedForwardLength, c.VocabularySize, c.ContextLength));
        Assert.True(c.TiedOutputHead);
        Assert.Same(model.Weights.TokenEmbedding, model.Weights.Output);
    }

    [FixtureTheory]
    [InlineData("hf", true)]
    [InlineData("hf-explicit-lm-head", false)]
    public void HuggingFaceFoldersLoadWithRotateHalfAndTheirOwnHead(string folder, bool tied)
    {
        using var model = Load(folder);
        Assert.Equal(RopeLayout.RotateHalf, model.Config.RopeLayout);
        Assert.Equal(tied, ReferenceEquals(model.Weights.TokenEmbedding, model.Weights.Output));
        Assert.Equal(GgmlType.F32, model.Weights.Layers[0].Query.Type);
    }

    [FixtureFact]
    public void HuggingFaceFolderAndItsGgufConversionGiveTheSameLogits()
    {
        // GGUF llama rotates adjacent pairs over permuted q/k rows; Hugging Face rotates halves
        // over unpermuted rows. Only the summation order inside attention may differ.
        using var gguf = Load("stories260K-f32.gguf");
        using var hf = Load("hf-explicit-lm-head");
        using var a = new LlamaSession(gguf, 32);
        using var b = new LlamaSession(hf, 32);
        var prompt = Stories260KReference.Load("prompt-a-greedy-128").PromptIds;
        for (var pos = 0; pos < 32; pos++)
        {
            var token = prompt[pos % prompt.Length];
            var x = a.Forward(token, pos).ToArray();
            var y = b.Forward(token, pos);
            var scale = x.Max(Math.Abs);
            for (var v = 0; v < x.Length; v++)
                Assert.True(Math.Abs(x[v] - y[v]) <= 1e-5 * scale, $"pos {pos} token {v}: gguf {x[v]} hf {y[v]}");
        }
    }
}

/// <summary>Greedy decoding with llama2.c's tie rule (strict &gt;: the lowest id wins).</summary>
internal static class Greedy
{
    public static List<int> Run(LlamaModel model, int[] prompt, int steps)
    {
        using var session = new LlamaSession(model, prompt.Length + steps);
        var ids = new List<int>();
        var token = prompt[0];
        for (var pos = 0; ids.Count < steps; pos++)
        {
            var logits = session.Forward(token, pos);
            if (pos + 1 < prompt.Length)
            {
                token = prompt[pos + 1];
                continue;
            }
            var best = 0;
            for (var v = 1; v < logits.Length; v++) if (logits[v] > logits[best]) best = v;
            ids.Add(best);
            token = best;
        }
        return ids;
    }
}
