using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Execution;
using Bulwark.Engine.Serving.Sampling;
using static Bulwark.Engine.Tests.Serving.EngineHarness;

namespace Bulwark.Engine.Tests.Serving;

/// <summary>Ending one choice of an n-choice request early, as the server's output guard does when it blocks a choice.</summary>
public class ChoiceControlTests
{
    private static readonly SamplingParams Greedy = new() { Temperature = 0, MaxTokens = 40, IgnoreEos = true, N = 3 };

    [Fact]
    public async Task AStoppedChoiceEndsAtTheNextStepAndTheOthersRunToTheirEnd()
    {
        // The model holds its 6th step until the test lets it go, so the stop is asked for at a known point:
        // after every choice's 5th token, while step 6 (already scheduled with choice 1 in it) waits.
        var model = new PausingModel(new PagedToyModel(), pauseAtStep: 6);
        using var engine = new LlmEngine(model, new EngineOptions { KvCacheBlocks = 64, BlockSize = 4 });
        var control = new ChoiceControl();
        var events = new List<TokenEvent>();
        await foreach (var e in engine.GenerateAsync(new EngineRequest { PromptTokens = [1, 2, 3], Sampling = Greedy, Choices = control }))
        {
            events.Add(e);
            if (e.Index == 1 && e.CompletionTokens == 5)
            {
                control.Stop(1);
                model.Resume();
            }
        }

        // Step 6 still computes choice 1; the stop is applied at the boundary after it, and choice 1 never finishes.
        var stopped = events.Where(e => e.Index == 1).ToList();
        Assert.Equal(6, stopped.Count);
        Assert.All(stopped, e => Assert.Null(e.FinishReason));
        foreach (var other in new[] { 0, 2 })
        {
            Assert.Equal(40, events.Count(e => e.Index == other));
            Assert.Equal(FinishReason.Length, events.Last(e => e.Index == other).FinishReason);
        }
        // The stopped choice's blocks went back to the pool: nothing is left once the request ends.
        for (var i = 0; i < 1000 && engine.Counters.KvBlocksUsed != 0; i++) await Task.Delay(5);
        Assert.Equal(0, engine.Counters.KvBlocksUsed);
    }

    [Fact]
    public async Task StopsAskedBeforeTheRequestForksAreAppliedToTheForks()
    {
        using var engine = new LlmEngine(new PagedToyModel(), new EngineOptions { KvCacheBlocks = 64, BlockSize = 4 });
        var control = new ChoiceControl();
        control.Stop(2);
        control.Stop(0);
        var events = await CollectAsync(engine, new EngineRequest { PromptTokens = [1, 2, 3], Sampling = Greedy with { MaxTokens = 6 }, Choices = control });

        // Choice 0 still computes the shared prompt (the fork needs it) but emits nothing; choice 2 is never created.
        Assert.DoesNotContain(events, e => e.Index is 0 or 2);
        Assert.Equal(6, events.Count(e => e.Index == 1));
        Assert.True(control.IsStopped(0) && control.IsStopped(2) && !control.IsStopped(1));
    }

    [Fact]
    public async Task StoppingEveryChoiceEndsTheRequest()
    {
        var model = new PausingModel(new PagedToyModel(), pauseAtStep: 2);
        using var engine = new LlmEngine(model, new EngineOptions { KvCacheBlocks = 64, BlockSize = 4 });
        var control = new ChoiceControl();
        var seen = 0;
        await foreach (var e in engine.GenerateAsync(new EngineRequest { PromptTokens = [1, 2, 3], Sampling = Greedy with { MaxTokens = 200 }, Choices = control }))
        {
            control.Stop(e.Index);
            if (++seen == 3) model.Resume();
        }
        // Step 1's three tokens, then step 2's (scheduled before the stops): the stream ends without running to max_tokens.
        Assert.Equal(6, seen);
    }

    [Fact]
    public async Task AChoiceControlServesOneRequest()
    {
        using var engine = new LlmEngine(new PagedToyModel(), new EngineOptions { KvCacheBlocks = 64, BlockSize = 4 });
        var control = new ChoiceControl();
        await CollectAsync(engine, new EngineRequest { PromptTokens = [1], Sampling = Greedy with { MaxTokens = 1, N = 1 }, Choices = control });
        await Assert.ThrowsAsync<InvalidOperationException>(() =>
            CollectAsync(engine, new EngineRequest { PromptTokens = [1], Sampling = Greedy with { MaxTokens = 1, N = 1 }, Choices = control }));
    }
}
