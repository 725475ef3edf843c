using Bulwark.Engine.Serving.Execution;
using Bulwark.Engine.Serving.Scheduling;
using Bulwark.Engine.Synthesis;
using static Bulwark.Engine.Tests.Serving.StepDriver;

namespace Bulwark.Engine.Tests.Serving;

/// <summary>
/// The batched executor against the reference session on the architectures whose layers differ from each other
/// or whose RoPE is scaled: several sequences, prompts split into chunks, then decoding.
/// </summary>
public class PagedLlamaExecutorArchitectureTests
{
    public static TheoryData<string> Models() => new() { "llama3", "smollm3", "phi3" };

    private static SyntheticModelSpec Spec(string name) => name switch
    {
        "llama3" => Tests.Model.ArchitectureAgreementTests.Spec("llama3", Bulwark.Engine.Formats.GgmlType.F32),
        "smollm3" => Tests.Model.ArchitectureAgreementTests.Spec("smollm3", Bulwark.Engine.Formats.GgmlType.F32),
        // Original context 4: the reference's sessions (8 to 35 positions) and the executor (64) all take the long factors.
        "phi3" => Tests.Model.ArchitectureAgreementTests.Spec("phi3-long", Bulwark.Engine.Formats.GgmlType.F32) with { RopeScaling = SyntheticRope.LongRope(16, 4, 4f) },
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "no such model"),
    };

    [Theory]
    [MemberData(nameof(Models))]
    public void BatchedChunkedDecodingMatchesTheSession(string name)
    {
        using var model = SyntheticGguf.Load(Spec(name));
        var random = new Random(11);
        using var executor = new PagedLlamaExecutor(model);
        var driver = new StepDriver(executor, blocks: 32, blockSize: 4, prefixCaching: false,
            new SchedulerOptions { MaxPrefillChunk = 5, MaxBatchedTokens = 512, MaxSequences = 64 });
        var prompts = new[] { 2, 11, 29 }.Select(n => Enumerable.Range(0, n).Select(_ => random.Next(model.Config.VocabularySize)).ToArray()).ToArray();
        var runs = prompts.Select(p => driver.Add(p, maxTokens: 6)).ToArray();
        driver.RunToEnd();
        for (var i = 0; i < prompts.Length; i++)
            AssertSame(Alone(model, prompts[i], 6), runs[i], $"{name} prompt {i}");
    }
}
