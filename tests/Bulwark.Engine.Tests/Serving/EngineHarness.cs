using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Execution;

namespace Bulwark.Engine.Tests.Serving;

/// <summary>Runs requests through an engine and collects each choice's tokens and events.</summary>
internal static class EngineHarness
{
    public static async Task<List<TokenEvent>> CollectAsync(LlmEngine engine, EngineRequest request, CancellationToken ct = default)
    {
        var events = new List<TokenEvent>();
        await foreach (var e in engine.GenerateAsync(request, ct))
            events.Add(e);
        return events;
    }

    /// <summary>Waits for the engine to reach a state: the loop publishes counters right after finishing, the stream completes first. Polling, not timing.</summary>
    public static async Task WaitUntilAsync(Func<bool> condition)
    {
        for (var i = 0; i < 2000 && !condition(); i++)
            await Task.Delay(5);
        Assert.True(condition(), "the engine did not become idle");
    }

    /// <summary>A prompt of ids below <paramref name="alphabet"/>; short alphabets make n-grams recur (so prompt lookup drafts).</summary>
    public static int[] RandomPrompt(Random random, int length, int alphabet) =>
        Enumerable.Range(0, length).Select(_ => random.Next(alphabet)).ToArray();

    public static int[] Ids(IEnumerable<TokenEvent> events, int choice = 0) =>
        events.Where(e => e.Index == choice).Select(e => e.TokenId).ToArray();

    /// <summary>Greedy ids of each prompt when it runs alone on a fresh engine.</summary>
    public static async Task<int[][]> AloneAsync(Func<IModelExecutor> model, IReadOnlyList<EngineRequest> requests, EngineOptions options)
    {
        var result = new int[requests.Count][];
        for (var i = 0; i < requests.Count; i++)
        {
            using var engine = new LlmEngine(model(), options with { PrefixCaching = false });
            result[i] = Ids(await CollectAsync(engine, requests[i]));
        }
        return result;
    }
}
