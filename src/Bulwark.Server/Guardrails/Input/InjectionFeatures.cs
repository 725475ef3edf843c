namespace Bulwark.Server.Guardrails.Input;

/// <summary>
/// Turns a scanned text into the sparse vector the injection model reads: hashed character
/// n-grams (<see cref="MinN"/>..<see cref="MaxN"/>) and word uni- and bigrams of the normalized
/// text, each present-or-absent, scaled together to unit length (so a long document does not
/// outvote its one injected sentence by sheer size), followed by one unscaled 0/1 feature per
/// rule. Hashing is FNV-1a over UTF-16 code units, so the vector depends on nothing but the text
/// and these parameters (never on <see cref="string.GetHashCode()"/>, which is salted per process).
/// </summary>
public sealed class InjectionFeatures
{
    public InjectionFeatures(int hashBits, int minN, int maxN, IReadOnlyList<string> ruleIds)
    {
        if (hashBits is < 8 or > 24) throw new ArgumentOutOfRangeException(nameof(hashBits), hashBits, $"hashBits must be between 8 and 24; got {hashBits}");
        if (minN < 1 || maxN < minN || maxN > 8) throw new ArgumentOutOfRangeException(nameof(maxN), $"character n-gram range must be within 1..8; got {minN}..{maxN}");
        HashBits = hashBits;
        MinN = minN;
        MaxN = maxN;
        RuleIds = ruleIds;
    }

    public int HashBits { get; }
    public int MinN { get; }
    public int MaxN { get; }
    public IReadOnlyList<string> RuleIds { get; }

    public int Buckets => 1 << HashBits;

    /// <summary>Hashed buckets plus one slot per rule.</summary>
    public int Dimension => Buckets + RuleIds.Count;

    /// <summary>
    /// The vectors the model scores for one text: the whole text first, then each of its
    /// <see cref="ScanText.Segments"/> when there are several. A text's score is the highest of
    /// them (multiple-instance: an attack needs only one bad segment, a benign text none).
    /// </summary>
    public List<(int[] Indices, float[] Values)> Instances(string normalized, IReadOnlyCollection<string> ruleHits)
    {
        var segments = ScanText.Segments(normalized);
        var instances = new List<(int[], float[])>(segments.Count + 1);
        instances.Add(Extract(normalized, ruleHits));
        if (segments.Count > 1)
        {
            foreach (var segment in segments) instances.Add(Extract(segment, ruleHits));
        }
        return instances;
    }

    /// <summary>Sorted distinct indices and their values.</summary>
    public (int[] Indices, float[] Values) Extract(string normalized, IReadOnlyCollection<string> ruleHits)
    {
        var mask = (uint)Buckets - 1;
        var padded = " " + normalized + " ";
        var words = Words(normalized);
        var hashed = new int[Math.Max(0, padded.Length - MinN + 1) * (MaxN - MinN + 1) + 2 * words.Count];
        var count = 0;
        for (var i = 0; i + MinN <= padded.Length; i++)
        {
            // Perf: one FNV-1a pass per start position yields every n-gram length from there.
            var h = Offset;
            for (var k = 0; k < MaxN && i + k < padded.Length; k++)
            {
                h = Step(h, padded[i + k]);
                if (k + 1 >= MinN) hashed[count++] = (int)(h & mask);
            }
        }
        for (var w = 0; w < words.Count; w++)
        {
            hashed[count++] = (int)(Hash(words[w], 101) & mask);
            if (w > 0) hashed[count++] = (int)(Hash(words[w - 1] + " " + words[w], 102) & mask);
        }
        Array.Sort(hashed, 0, count);
        var distinct = 0;
        for (var i = 0; i < count; i++)
        {
            if (distinct == 0 || hashed[i] != hashed[distinct - 1]) hashed[distinct++] = hashed[i];
        }
        var indices = new int[distinct + ruleHits.Count];
        var values = new float[indices.Length];
        hashed.AsSpan(0, distinct).CopyTo(indices);
        values.AsSpan(0, distinct).Fill(distinct == 0 ? 0f : (float)(1.0 / Math.Sqrt(distinct)));
        var n = distinct;
        for (var r = 0; r < RuleIds.Count; r++)
        {
            if (!ruleHits.Contains(RuleIds[r])) continue;
            indices[n] = Buckets + r;
            values[n++] = 1f;
        }
        return (indices[..n], values[..n]);
    }

    private const uint Offset = 2166136261u;

    private static uint Step(uint h, char c) => ((h ^ (byte)c) * 16777619u ^ (uint)(c >> 8)) * 16777619u;

    private static uint Hash(ReadOnlySpan<char> text, uint salt)
    {
        var h = Offset ^ salt;
        foreach (var c in text) h = Step(h, c);
        return h;
    }

    private static List<string> Words(string text)
    {
        var words = new List<string>();
        var start = -1;
        for (var i = 0; i <= text.Length; i++)
        {
            var inWord = i < text.Length && char.IsLetterOrDigit(text[i]);
            if (inWord && start < 0) start = i;
            else if (!inWord && start >= 0)
            {
                words.Add(text[start..i]);
                start = -1;
            }
        }
        return words;
    }
}
