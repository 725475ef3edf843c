using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Serving.Execution;
using Bulwark.Engine.Serving.Scheduling;
using Bulwark.Engine.Tests.Model;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Serving;

/// <summary>The paged executor on a trained checkpoint against llama2.c's run.c (an independent implementation).</summary>
public class PagedLlamaExecutorStories260KTests
{
    [FixtureTheory]
    [InlineData("bos-greedy-256")]
    [InlineData("prompt-a-greedy-128")]
    public void BatchedPrefixesGiveLlama2cLogitsAtEveryPosition(string name)
    {
        var reference = Stories260KReference.Load(name);
        using var model = GgufModelLoader.Load(Fixtures.PathOf("model-260k", "stories260K-f32.gguf"));
        using var executor = new PagedLlamaExecutor(model, 64);
        var driver = new StepDriver(executor, blocks: 32, blockSize: 4, prefixCaching: true,
            new SchedulerOptions { MaxPrefillChunk = 3, MaxBatchedTokens = 16 });
        var sequence = reference.PromptIds.Concat(reference.GeneratedIds).ToArray();
        // Position p's logits are the last logits of the prefix [0, p]; all eight prefixes run in one batch.
        var runs = Enumerable.Range(0, 8).Select(p => driver.Add(sequence[..(p + 1)], maxTokens: 1)).ToArray();
        driver.RunToEnd();
        for (var p = 0; p < 8; p++)
            for (var v = 0; v < 512; v++)
                Assert.True(Math.Abs(runs[p].Logits[0][v] - reference.Logits[p][v]) <= 1e-4,
                    $"pos {p} token {v}: ours {runs[p].Logits[0][v]} llama2.c {reference.Logits[p][v]}");
    }
}
