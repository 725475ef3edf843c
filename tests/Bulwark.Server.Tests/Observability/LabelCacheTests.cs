using Bulwark.Server.Observability;

namespace Bulwark.Server.Tests.Observability;

/// <summary>
/// <see cref="LabelCache"/>, the remembered exposition text of label sets, held to its slow twin
/// (<see cref="PrometheusExposition.Labels"/>, building the text every time) and to its size bound.
/// </summary>
public sealed class LabelCacheTests
{
    private enum Outcome { Success, Failure }

    private static KeyValuePair<string, object?>[] Tags(params (string Key, object? Value)[] tags) => tags.Select(t => new KeyValuePair<string, object?>(t.Key, t.Value)).ToArray();

    [Fact]
    public void RandomLabelSetsGetTheSameTextAsBuiltFromScratchFirstAndEveryTimeAfter()
    {
        var random = new Random(16);
        object?[] values = ["a", "b\"q", "back\\slash", "new\nline", "", null, 200, 404, 7L, true, false, Outcome.Success, Outcome.Failure, 'c', 0.5, -0.0, 0.0];
        string[] keys = ["status", "model", "route", "outcome"];
        var cache = new LabelCache();
        for (var i = 0; i < 5000; i++)
        {
            var n = random.Next(0, 4);
            var tags = Enumerable.Range(0, n).Select(k => new KeyValuePair<string, object?>(keys[(k + random.Next(2)) % keys.Length], values[random.Next(values.Length)])).ToArray();
            Assert.Equal(PrometheusExposition.Labels(tags), cache.Get(tags));
        }
        Assert.InRange(cache.Count, 1, LabelCache.MaxEntries);
    }

    [Fact]
    public void EqualTagsInAnotherArrayAreFoundAndTheSameKeysInAnotherOrderGiveTheSameText()
    {
        var cache = new LabelCache();
        var first = cache.Get(Tags(("route", "/v1/chat/completions"), ("status", 200)));
        Assert.Same(first, cache.Get(Tags(("route", "/v1/chat/completions"), ("status", 200))));
        Assert.Equal(1, cache.Count);
        Assert.Equal(first, cache.Get(Tags(("status", 200), ("route", "/v1/chat/completions"))));
        Assert.Equal("route=\"/v1/chat/completions\",status=\"200\"", first);
        // A value that differs only in its type's text is another set: 200 and "200" print the same, and are both kept.
        Assert.Equal(first, cache.Get(Tags(("route", "/v1/chat/completions"), ("status", "200"))));
        Assert.Equal("route=\"/v1/chat/completions\",status=\"201\"", cache.Get(Tags(("route", "/v1/chat/completions"), ("status", 201))));
    }

    [Fact]
    public void FloatsAndOtherObjectsAreFormattedEveryTimeAndNotKept()
    {
        var cache = new LabelCache();
        Assert.Equal("x=\"0\"", cache.Get(Tags(("x", 0.0))));
        Assert.Equal("x=\"-0\"", cache.Get(Tags(("x", -0.0))));
        var changing = new Changing { Text = "one" };
        Assert.Equal("x=\"one\"", cache.Get(Tags(("x", changing))));
        changing.Text = "two";
        Assert.Equal("x=\"two\"", cache.Get(Tags(("x", changing))));
        Assert.Equal(0, cache.Count);
        Assert.Equal("", cache.Get([]));
    }

    [Fact]
    public void AtMostMaxEntriesSetsAreKeptAndThoseBeyondAreStillRight()
    {
        var cache = new LabelCache();
        for (var i = 0; i < LabelCache.MaxEntries - 1; i++) cache.Get(Tags(("n", i)));
        Assert.Equal(LabelCache.MaxEntries - 1, cache.Count);
        cache.Get(Tags(("n", LabelCache.MaxEntries - 1)));
        Assert.Equal(LabelCache.MaxEntries, cache.Count);
        Assert.Equal($"n=\"{LabelCache.MaxEntries}\"", cache.Get(Tags(("n", LabelCache.MaxEntries))));
        Assert.Equal(LabelCache.MaxEntries, cache.Count);
        Assert.Equal("n=\"0\"", cache.Get(Tags(("n", 0))));
    }

    [Fact]
    public async Task ManyThreadsRecordingTheSameSetsKeepOneEntryEach()
    {
        var cache = new LabelCache();
        await Task.WhenAll(Enumerable.Range(0, 8).Select(t => Task.Run(() =>
        {
            for (var i = 0; i < 2000; i++)
                Assert.Equal($"n=\"{i % 10}\",t=\"x\"", cache.Get(Tags(("n", i % 10), ("t", "x"))));
        })));
        Assert.Equal(10, cache.Count);
    }

    private sealed class Changing
    {
        public string Text { get; set; } = "";
        public override string ToString() => Text;
    }
}
