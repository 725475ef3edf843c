using Bulwark.Engine.Serving.Speculation;

namespace Bulwark.Engine.Tests.Serving.Speculation;

public class PromptLookupTests
{
    [Fact]
    public void TheLongestTailNgramWinsAndItsMostRecentOccurrenceIsFollowed()
    {
        // Tail [7, 8, 9]: the 3-gram occurs at 0 and 6; the most recent (6) is followed by 4, 4.
        int[] tokens = [7, 8, 9, 1, 2, 3, 7, 8, 9, 4, 4, 5, 8, 9, 6, 7, 8, 9];
        var drafts = new int[4];
        Assert.Equal(4, PromptLookup.Propose(tokens, 1, 3, drafts));
        Assert.Equal([4, 4, 5, 8], drafts);
        // Only 2-grams allowed: [8, 9] last occurred at 12, followed by 6, 7, 8, 9.
        Assert.Equal(4, PromptLookup.Propose(tokens, 1, 2, drafts));
        Assert.Equal([6, 7, 8, 9], drafts);
    }

    [Fact]
    public void NoMatchAboveTheMinimumProposesNothingAndAMatchNearTheEndProposesFewer()
    {
        var drafts = new int[4];
        Assert.Equal(0, PromptLookup.Propose([1, 2, 3, 4], 1, 3, drafts));
        Assert.Equal(0, PromptLookup.Propose([1, 2, 5, 2], 2, 3, drafts)); // only the 1-gram [2] recurs
        Assert.Equal(2, PromptLookup.Propose([1, 2, 5, 2], 1, 3, drafts));
        Assert.Equal([5, 2], drafts[..2]);
        Assert.Equal(1, PromptLookup.Propose([3, 3], 1, 3, drafts));
        Assert.Equal(0, PromptLookup.Propose([3], 1, 3, drafts));
    }

    [Fact]
    public void MatchesTheSlowTwinOnRandomSequences()
    {
        var random = new Random(5);
        for (var trial = 0; trial < 3000; trial++)
        {
            var tokens = Enumerable.Range(0, random.Next(1, 40)).Select(_ => random.Next(1 + trial % 6)).ToArray();
            var max = random.Next(1, 5);
            var min = random.Next(1, max + 1);
            var k = random.Next(1, 6);
            var fast = new int[k];
            var slow = new int[k];
            var n = PromptLookup.Propose(tokens, min, max, fast);
            Assert.Equal(PromptLookup.ProposeNaive(tokens, min, max, slow), n);
            Assert.Equal(slow[..n], fast[..n]);
        }
    }
}
