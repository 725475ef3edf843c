using Bulwark.Engine.Model;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Model;

/// <summary>The 260K checkpoint from GGUF against llama2.c's run.c (an independent float32 implementation).</summary>
public class Stories260KGgufTests
{
    public static TheoryData<string, string> FilesAndCases()
    {
        var data = new TheoryData<string, string>();
        foreach (var file in new[] { "stories260K-f32.gguf", "stories260K-f32-no-output.gguf" })
        foreach (var name in Stories260KReference.Cases)
            data.Add(file, name);
        return data;
    }

    [FixtureTheory]
    [MemberData(nameof(FilesAndCases))]
    public void LogitsOfTheFirstEightPositionsMatchLlama2c(string file, string name)
    {
        var reference = Stories260KReference.Load(name);
        using var model = GgufModelLoader.Load(Fixtures.PathOf("model-260k", file));
        using var session = model.CreateSession(64);
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
        using var model = GgufModelLoader.Load(Fixtures.PathOf("model-260k", file));
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
}

/// <summary>Greedy decoding with llama2.c's tie rule (strict &gt;: the lowest id wins).</summary>
internal static class Greedy
{
    public static List<int> Run(LlamaModel model, int[] prompt, int steps)
    {
        using var session = model.CreateSession(prompt.Length + steps);
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
