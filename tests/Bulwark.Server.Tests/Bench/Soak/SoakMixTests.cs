using Bulwark.Bench.Soak;

namespace Bulwark.Server.Tests.Bench.Soak;

/// <summary>The soak's request mix picks each kind in the shares its options give.</summary>
public sealed class SoakMixTests
{
    [Fact]
    public void KindsComeInTheConfiguredShares()
    {
        var mix = new SoakMix(DisconnectShare: 0.1, RefusedShare: 0.2, StreamShare: 0.25);
        var random = new Random(7);
        const int picks = 200_000;
        var counts = Enumerable.Range(0, picks).Select(_ => mix.Pick(random)).CountBy(k => k).ToDictionary();
        double Share(params SoakRequestKind[] kinds) => kinds.Sum(k => counts.GetValueOrDefault(k)) / (double)picks;

        Assert.Equal(0.1, Share(SoakRequestKind.Disconnect), 2);
        Assert.Equal(0.1, Share(SoakRequestKind.BadKey), 2);
        Assert.Equal(0.1, Share(SoakRequestKind.LongPrompt), 2);
        // The other 70 %: half chat, half completions; a quarter of each streamed.
        Assert.Equal(0.35, Share(SoakRequestKind.Chat, SoakRequestKind.ChatStream), 2);
        Assert.Equal(0.7 * 0.25, Share(SoakRequestKind.ChatStream, SoakRequestKind.CompletionStream), 2);
    }

    [Fact]
    public void WithNoDisconnectsOrRefusalsEveryRequestIsAGeneration()
    {
        var mix = new SoakMix(0, 0, 1);
        var random = new Random(1);
        Assert.All(Enumerable.Range(0, 1000).Select(_ => mix.Pick(random)), k => Assert.True(k is SoakRequestKind.ChatStream or SoakRequestKind.CompletionStream, k.ToString()));
    }
}
