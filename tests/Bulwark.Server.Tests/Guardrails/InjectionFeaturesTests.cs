using Bulwark.Server.Guardrails.Input;

namespace Bulwark.Server.Tests.Guardrails;

/// <summary>
/// <see cref="InjectionFeatures.Extract"/> reads the text in place and keeps only distinct hashes in a
/// rented scratch; <see cref="PlainExtract"/> is its slow twin, written the obvious way (pad the string,
/// list every hash, list the words, drop duplicates after). The model's weights are indexed by these
/// vectors, so the two must agree exactly: same indices, same order, same values.
/// </summary>
public sealed class InjectionFeaturesTests
{
    private static readonly string[] Rules = ["r1", "r2", "r3"];

    [Theory]
    [InlineData(8, 1, 1, InjectionFeatureLayout.None)]
    [InlineData(8, 2, 5, InjectionFeatureLayout.All)]
    [InlineData(12, 3, 4, InjectionFeatureLayout.Shape)]
    [InlineData(16, 1, 8, InjectionFeatureLayout.DocumentContext)]
    public void ExtractEqualsThePlainVersionOnRandomTexts(int hashBits, int minN, int maxN, InjectionFeatureLayout layout)
    {
        var features = new InjectionFeatures(hashBits, minN, maxN, Rules, layout);
        var random = new Random(hashBits * 100 + minN * 10 + maxN);
        for (var trial = 0; trial < 300; trial++)
        {
            var text = RandomText(random, random.Next(0, trial % 50 == 0 ? 5000 : 200));
            string[] hits = [.. Rules.Where(_ => random.Next(2) == 0), "not-a-rule-of-the-model"];
            var segments = random.Next(1, 12);
            var betweenRows = random.Next(2) == 0;
            var (indices, values) = features.Extract(text, hits, segments, betweenRows);
            var (plainIndices, plainValues) = PlainExtract(features, text, hits, segments, betweenRows);
            Assert.Equal(plainIndices, indices);
            Assert.Equal(plainValues, values);
        }
    }

    [Fact]
    public void ALongTextWithMoreDistinctNgramsThanBucketsFillsEveryBucketOnce()
    {
        var features = new InjectionFeatures(8, 2, 5, Rules);
        var text = RandomText(new Random(3), 20_000);
        var (indices, _) = features.Extract(text, []);
        Assert.Equal(features.Buckets, indices.Length);
        Assert.Equal(features.Buckets, indices.Distinct().Count());
        Assert.Equal(PlainExtract(features, text, [], 1, false).Indices, indices);
    }

    [Fact]
    public void TheEmptyTextHasOnlyTheHashesOfItsPaddingAndItsRules()
    {
        var features = new InjectionFeatures(8, 1, 2, Rules);
        var (indices, values) = features.Extract("", ["r2"]);
        Assert.Equal(PlainExtract(features, "", ["r2"], 1, false).Indices, indices);
        Assert.Equal(features.Buckets + 1, indices[^1]);
        Assert.Equal(1f, values[^1]);
    }

    /// <summary>Letters, digits, spaces, line feeds, punctuation, pipes and some non-ASCII (surrogate pairs too).</summary>
    private static string RandomText(Random random, int length)
    {
        const string alphabet = "abcdefghij klmno pqrst 0123 \n.,!?|éß中";
        var chars = new List<char>(length);
        while (chars.Count < length)
        {
            if (random.Next(40) == 0) chars.AddRange("😀");
            else chars.Add(alphabet[random.Next(alphabet.Length)]);
        }
        return new string([.. chars]);
    }

    /// <summary>The features as the class documents them, built in the plainest way.</summary>
    private static (int[] Indices, float[] Values) PlainExtract(InjectionFeatures f, string text, IReadOnlyCollection<string> ruleHits, int segmentCount, bool betweenRows)
    {
        var mask = (uint)f.Buckets - 1;
        var padded = " " + text + " ";
        var hashes = new List<int>();
        for (var i = 0; i + f.MinN <= padded.Length; i++)
        {
            for (var n = f.MinN; n <= f.MaxN && i + n <= padded.Length; n++)
                hashes.Add((int)(Fnv(Offset, padded.AsSpan(i, n)) & mask));
        }
        var words = new List<string>();
        var word = "";
        foreach (var c in text + " ")
        {
            if (char.IsLetterOrDigit(c)) word += c;
            else if (word.Length > 0)
            {
                words.Add(word);
                word = "";
            }
        }
        for (var w = 0; w < words.Count; w++)
        {
            hashes.Add((int)(Fnv(Offset ^ 101, words[w]) & mask));
            if (w > 0) hashes.Add((int)(Fnv(Offset ^ 102, words[w - 1] + " " + words[w]) & mask));
        }
        var distinct = hashes.Distinct().ToList(); // Distinct keeps first-occurrence order
        var indices = new List<int>(distinct);
        var values = Enumerable.Repeat(distinct.Count == 0 ? 0f : (float)(1.0 / Math.Sqrt(distinct.Count)), distinct.Count).ToList();
        for (var r = 0; r < f.RuleIds.Count; r++)
        {
            if (!ruleHits.Contains(f.RuleIds[r])) continue;
            indices.Add(f.Buckets + r);
            values.Add(1f);
        }
        var shape = (f.Layout & InjectionFeatureLayout.Shape) != 0;
        if (shape)
        {
            indices.Add(f.Buckets + f.RuleIds.Count + Math.Min(InjectionFeatures.LengthBuckets - 1, (int)Math.Log2(text.Length + 1)));
            indices.Add(f.Buckets + f.RuleIds.Count + InjectionFeatures.LengthBuckets + segmentCount switch { <= 1 => 0, 2 => 1, 3 => 2, < 8 => 3, _ => 4 });
            values.AddRange([1f, 1f]);
        }
        if (betweenRows)
        {
            indices.Add(f.Buckets + f.RuleIds.Count + (shape ? InjectionFeatures.LengthBuckets + InjectionFeatures.SegmentBuckets : 0));
            values.Add(1f);
        }
        return ([.. indices], [.. values]);
    }

    private const uint Offset = 2166136261u;

    /// <summary>FNV-1a over each UTF-16 code unit's two bytes, low byte first.</summary>
    private static uint Fnv(uint h, ReadOnlySpan<char> text)
    {
        foreach (var c in text) h = ((h ^ (byte)c) * 16777619u ^ (uint)(c >> 8)) * 16777619u;
        return h;
    }
}
