using Bulwark.Engine.Model;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Kernels;

/// <summary>The fast kernels inside a real forward pass (the 260K fixture model).</summary>
public class SessionKernelTests
{
    private static string Model => Fixtures.PathOf("model-260k", "stories260K-f32.gguf");

    [FixtureFact]
    public void ForwardAllocatesNothingPerToken()
    {
        using var model = GgufModelLoader.Load(Model);
        using var session = model.CreateSession(64);
        for (var pos = 0; pos < 4; pos++) session.Forward(pos + 1, pos);
        // Three windows of twelve tokens: an allocation per token shows in every one. Only the
        // smallest must be zero, so that a one-off of the runtime's during a parallel test run
        // (CI once saw 2 KB in one window and could not repeat it) does not fail the property.
        var windows = new long[3];
        for (var w = 0; w < windows.Length; w++)
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            for (var pos = 4 + 12 * w; pos < 16 + 12 * w; pos++) session.Forward(pos % 300 + 1, pos);
            windows[w] = GC.GetAllocatedBytesForCurrentThread() - before;
        }
        Assert.True(windows.Min() == 0, $"bytes allocated per 12-token window: {string.Join(", ", windows)}");
    }

    [FixtureTheory]
    [InlineData(1, 0)]
    [InlineData(7, 0)]
    [InlineData(20, 3)]
    public void PrefillGivesTheLogitsOfTokenByTokenForward(int count, int start)
    {
        using var model = GgufModelLoader.Load(Model);
        using var stepwise = model.CreateSession(64);
        using var batched = model.CreateSession(64);
        var tokens = Enumerable.Range(0, start + count).Select(i => (i * 37 + 5) % 512).ToArray();
        float[] expected = [];
        for (var pos = 0; pos < tokens.Length; pos++) expected = stepwise.Forward(tokens[pos], pos).ToArray();
        if (start > 0) batched.Prefill(tokens.AsSpan(0, start), 0);
        var actual = batched.Prefill(tokens.AsSpan(start), start).ToArray();
        for (var v = 0; v < expected.Length; v++)
            Assert.True(Math.Abs(expected[v] - actual[v]) <= 1e-4f, $"token {v}: forward {expected[v]} prefill {actual[v]}");
        // The cache holds the same keys too: the next step agrees.
        var next = tokens.Length % 64;
        Assert.Equal(stepwise.Forward(next, tokens.Length).ToArray(), batched.Forward(next, tokens.Length).ToArray(), new ToleranceComparer(1e-4f));
    }

    [FixtureFact]
    public void PrefillLongerThanOneChunkMatchesForward()
    {
        using var model = GgufModelLoader.Load(Model);
        var length = LlamaSession.MaxPrefillChunk + 9;
        Assert.True(length <= model.Config.ContextLength);
        using var stepwise = model.CreateSession(length);
        using var batched = model.CreateSession(length);
        var tokens = Enumerable.Range(0, length).Select(i => (i * 13 + 1) % 512).ToArray();
        float[] expected = [];
        for (var pos = 0; pos < length; pos++) expected = stepwise.Forward(tokens[pos], pos).ToArray();
        Assert.Equal(expected, batched.Prefill(tokens, 0).ToArray(), new ToleranceComparer(1e-4f));
    }

    [FixtureFact]
    public void PrefillRejectsPositionsPastTheContextAndBadTokens()
    {
        using var model = GgufModelLoader.Load(Model);
        using var session = model.CreateSession(8);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => session.Prefill(new int[5], 4));
        Assert.Contains("positions 4..8", e.Message);
        session.Prefill(new int[4], 4); // exactly at the limit
        Assert.Throws<ArgumentOutOfRangeException>(() => session.Prefill([512], 0));
        Assert.Throws<ArgumentException>(() => session.Prefill([], 0));
    }

    private sealed class ToleranceComparer(float tolerance) : IEqualityComparer<float>
    {
        public bool Equals(float a, float b) => Math.Abs(a - b) <= tolerance;
        public int GetHashCode(float value) => 0;
    }
}
