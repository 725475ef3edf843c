using System.Runtime.CompilerServices;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Server.Backends;
using Bulwark.Server.Guardrails.Output;
using Bulwark.Server.Observability;
using Bulwark.Server.Requests;
using Bulwark.Server.Spine;

namespace Bulwark.Server.Tests.Spine;

/// <summary>What the spine's delta loop costs per token when nothing guards the output and the guard model's output stage is off.</summary>
public sealed class GenerationRunAllocationTests
{
    /// <summary>Replays prebuilt deltas, completing every step synchronously, so the whole loop runs on the test's thread.</summary>
    private sealed class ReplayBackend(ChoiceDelta[] deltas) : IGenerationBackend
    {
        public ModelCard Model { get; } = new("replay", 1 << 20, 257, DateTimeOffset.UnixEpoch);

        public BackendStatistics Statistics => default;

        public PreparedPrompt Prepare(GenerationRequest request) => PreparedPrompt.Exact([1]);

#pragma warning disable CS1998 // no await: every step completes synchronously on purpose
        public async IAsyncEnumerable<ChoiceDelta> GenerateAsync(BackendCall call, [EnumeratorCancellation] CancellationToken cancellationToken)
        {
            foreach (var delta in deltas) yield return delta;
        }
#pragma warning restore CS1998
    }

    private static long AllocatedBy(int tokens, ServerMetrics metrics, IOutputGuard? guard = null)
    {
        var deltas = new ChoiceDelta[tokens];
        for (var i = 0; i < tokens; i++) deltas[i] = new ChoiceDelta(0, "ab", i == tokens - 1 ? FinishReason.Length : null, null, 1);
        var backend = new ReplayBackend(deltas);
        var request = new GenerationRequest { Model = "replay", Prompt = PromptInput.FromTokens([1]), Sampling = new SamplingParams { MaxTokens = tokens }, Stream = true };
        var run = new GenerationRun(new BackendCall(request, PreparedPrompt.Exact([1])), backend, guard ?? NoOutputGuard.Instance, null, metrics, TimeProvider.System,
            TimeProvider.System.GetTimestamp(), default, default, default);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var shown = 0;
        var e = run.GenerateAsync().GetAsyncEnumerator();
        while (true)
        {
            var next = e.MoveNextAsync();
            Assert.True(next.IsCompleted, "the loop waited on something: the stage is off and the backend never waits");
            if (!next.Result) break;
            shown++;
        }
        Assert.True(e.DisposeAsync().IsCompleted);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        if (guard is null) Assert.Equal(tokens, shown);
        return allocated;
    }

    [Fact]
    public void WithTheOutputStageOffTheDeltaLoopAllocatesNothingPerToken()
    {
        var metrics = new ServerMetrics(() => default, () => (0, 0));
        AllocatedBy(100, metrics); // JIT and first-use allocations out of the way
        var small = AllocatedBy(1_000, metrics);
        var large = AllocatedBy(21_000, metrics);
        // The run's fixed cost is the same for both; what grows with the tokens is per token.
        Assert.True(large - small < 20_000 / 10, $"{large - small} bytes more for 20,000 more tokens");
        // The measure sees per-token allocations where there are some: the secret redactor's output strings.
        var redactor = new SecretRedactionGuard();
        AllocatedBy(100, metrics, redactor);
        Assert.True(AllocatedBy(21_000, metrics, redactor) - AllocatedBy(1_000, metrics, redactor) > 20_000 * 8);
    }
}
