using System.Buffers;
using System.Diagnostics;

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
    public InjectionFeatures(int hashBits, int minN, int maxN, IReadOnlyList<string> ruleIds, InjectionFeatureLayout layout = InjectionFeatureLayout.None)
    {
        if ((layout & ~InjectionFeatureLayout.All) != 0) throw new ArgumentOutOfRangeException(nameof(layout), layout, $"unknown feature layout flags {(int)layout}");
        if (hashBits is < 8 or > 24) throw new ArgumentOutOfRangeException(nameof(hashBits), hashBits, $"hashBits must be between 8 and 24; got {hashBits}");
        if (minN < 1 || maxN < minN || maxN > 8) throw new ArgumentOutOfRangeException(nameof(maxN), $"character n-gram range must be within 1..8; got {minN}..{maxN}");
        HashBits = hashBits;
        MinN = minN;
        MaxN = maxN;
        RuleIds = ruleIds;
        Layout = layout;
    }

    /// <summary>Which optional feature groups and instances are used (stored in the model file).</summary>
    public InjectionFeatureLayout Layout { get; }

    /// <summary>Length buckets of an instance (floor of log2 of its length, capped).</summary>
    public const int LengthBuckets = 14;

    /// <summary>Buckets of the number of segments of the whole text: 1, 2, 3, 4–7, 8 or more.</summary>
    public const int SegmentBuckets = 5;

    private int ShapeCount => (Layout & InjectionFeatureLayout.Shape) != 0 ? LengthBuckets + SegmentBuckets : 0;

    /// <summary>Slots of the table context: prose between a table's rows.</summary>
    public const int ContextSlots = 1;

    private int ContextCount => (Layout & InjectionFeatureLayout.DocumentContext) != 0 ? ContextSlots : 0;

    public int HashBits { get; }
    public int MinN { get; }
    public int MaxN { get; }
    public IReadOnlyList<string> RuleIds { get; }

    public int Buckets => 1 << HashBits;

    /// <summary>Hashed buckets, one slot per rule, then the shape slots when <see cref="InjectionFeatureLayout.Shape"/> is on, then the table slots when <see cref="InjectionFeatureLayout.DocumentContext"/> is.</summary>
    public int Dimension => Buckets + RuleIds.Count + ShapeCount + ContextCount;

    /// <summary>
    /// The vectors the model scores for one text: the whole text first, then each of its
    /// <see cref="ScanText.Segments"/> when there are several. A text's score is the highest of
    /// them (multiple-instance: an attack needs only one bad segment, a benign text none).
    /// </summary>
    public List<(int[] Indices, float[] Values)> Instances(string normalized, IReadOnlyCollection<string> ruleHits)
    {
        var segments = ScanText.Segments(normalized);
        var instances = new List<(int[], float[])>(segments.Count + 1);
        if (segments.Count <= 1 || (Layout & InjectionFeatureLayout.SegmentsOnly) == 0) instances.Add(Extract(normalized, ruleHits, segments.Count));
        if (segments.Count > 1)
        {
            var perSegment = segments.Select(segment => (Layout & InjectionFeatureLayout.SegmentRules) != 0 ? SegmentHits(segment, ruleHits) : [.. ruleHits]).ToList();
            // A wording rule whose match spans segments ("DAN, an AI ... . ... without restrictions") matches none of them alone: every segment carries it.
            foreach (var id in ruleHits)
            {
                if (!perSegment.Any(hits => hits.Contains(id))) perSegment.ForEach(hits => hits.Add(id));
            }
            var context = (Layout & InjectionFeatureLayout.DocumentContext) != 0 ? DocumentContext.Of(segments) : null;
            for (var i = 0; i < segments.Count; i++) instances.Add(Extract(segments[i], perSegment[i], segments.Count, context?.BetweenRows(i) ?? false));
        }
        return instances;
    }

    /// <summary>
    /// The rules a segment carries: the text's structural hits (encodings, hidden characters: they
    /// are properties of the whole text) and the wording rules that match the segment itself, so
    /// the instruction planted in a document is the instance that carries the rule, not every line.
    /// </summary>
    private static List<string> SegmentHits(string segment, IReadOnlyCollection<string> ruleHits)
    {
        var hits = new List<string>(ruleHits.Count);
        foreach (var id in ruleHits)
        {
            var rule = InjectionRules.ById(id);
            if (!rule.HasPattern || rule.Matches(segment)) hits.Add(id);
        }
        return hits;
    }

    /// <summary>Distinct indices (hashed n-grams in order of first occurrence, then rules, then shape, then table context) and their values.</summary>
    /// <remarks>
    /// Perf: the only arrays allocated are the two returned, each of its final length. The text is read
    /// as if padded with a space at each end without building that string, words are hashed as they
    /// are found rather than listed, and each hash is checked against the per-thread "seen in this call"
    /// stamp at once, so the scratch holds distinct indices only (at most <see cref="Buckets"/>) and is
    /// rented. A long prompt used to allocate a scratch of 4 bytes per n-gram (hundreds of KiB, on the
    /// large object heap) per instance; <c>InjectionFeaturesTests</c> holds this to the plain version.
    /// </remarks>
    public (int[] Indices, float[] Values) Extract(string normalized, IReadOnlyCollection<string> ruleHits, int segmentCount = 1, bool betweenRows = false)
    {
        var mask = (uint)Buckets - 1;
        var seen = _seen is { } table && table.Length == Buckets ? table : _seen = new int[Buckets];
        if (++_stamp == int.MaxValue)
        {
            Array.Clear(seen);
            _stamp = 1;
        }
        var stamp = _stamp;
        var padded = normalized.Length + 2;
        // Every n-gram and word hash is a candidate; distinct ones are at most the buckets.
        var candidates = (long)Math.Max(0, padded - MinN + 1) * (MaxN - MinN + 1) + normalized.Length + 1;
        var scratch = ArrayPool<int>.Shared.Rent((int)Math.Min(candidates, Buckets));
        try
        {
            var distinct = 0;
            for (var i = 0; i + MinN <= padded; i++)
            {
                // Perf: one FNV-1a pass per start position yields every n-gram length from there.
                var h = Offset;
                for (var k = 0; k < MaxN && i + k < padded; k++)
                {
                    h = Step(h, PaddedAt(normalized, i + k));
                    if (k + 1 >= MinN) Keep(seen, stamp, scratch, ref distinct, h & mask);
                }
            }
            // Words (runs of letters and digits): each one's unigram, then its bigram with the word before.
            int start = -1, previousStart = -1, previousLength = 0;
            for (var i = 0; i <= normalized.Length; i++)
            {
                var inWord = i < normalized.Length && char.IsLetterOrDigit(normalized[i]);
                if (inWord && start < 0) start = i;
                else if (!inWord && start >= 0)
                {
                    var word = normalized.AsSpan(start, i - start);
                    Keep(seen, stamp, scratch, ref distinct, Hash(word, 101) & mask);
                    if (previousStart >= 0)
                    {
                        // Perf: the bigram "previous word" is hashed in place, without concatenating.
                        var h = Step(Hash(normalized.AsSpan(previousStart, previousLength), 102), ' ');
                        foreach (var c in word) h = Step(h, c);
                        Keep(seen, stamp, scratch, ref distinct, h & mask);
                    }
                    (previousStart, previousLength, start) = (start, i - start, -1);
                }
            }

            var rules = 0;
            foreach (var id in RuleIds) if (ruleHits.Contains(id)) rules++;
            var indices = new int[distinct + rules + (ShapeCount > 0 ? 2 : 0) + (betweenRows ? 1 : 0)];
            var values = new float[indices.Length];
            scratch.AsSpan(0, distinct).CopyTo(indices);
            values.AsSpan(0, distinct).Fill(distinct == 0 ? 0f : (float)(1.0 / Math.Sqrt(distinct)));
            var n = distinct;
            for (var r = 0; r < RuleIds.Count; r++)
            {
                if (!ruleHits.Contains(RuleIds[r])) continue;
                indices[n] = Buckets + r;
                values[n++] = 1f;
            }
            if (ShapeCount > 0)
            {
                var shape = Buckets + RuleIds.Count;
                indices[n] = shape + Math.Min(LengthBuckets - 1, (int)Math.Log2(normalized.Length + 1));
                values[n++] = 1f;
                indices[n] = shape + LengthBuckets + segmentCount switch { <= 1 => 0, 2 => 1, 3 => 2, < 8 => 3, _ => 4 };
                values[n++] = 1f;
            }
            if (betweenRows)
            {
                indices[n] = Buckets + RuleIds.Count + ShapeCount;
                values[n++] = 1f;
            }
            Debug.Assert(n == indices.Length);
            return (indices, values);
        }
        finally
        {
            ArrayPool<int>.Shared.Return(scratch);
        }
    }

    /// <summary>The text with one space before and after it, read in place.</summary>
    private static char PaddedAt(string text, int i) => i == 0 || i == text.Length + 1 ? ' ' : text[i - 1];

    /// <summary>Adds <paramref name="bucket"/> to the distinct indices unless this call has seen it already.</summary>
    private static void Keep(int[] seen, int stamp, int[] distinctIndices, ref int count, uint bucket)
    {
        if (seen[bucket] == stamp) return;
        seen[bucket] = stamp;
        distinctIndices[count++] = (int)bucket;
    }

    [ThreadStatic] private static int[]? _seen;
    [ThreadStatic] private static int _stamp;

    private const uint Offset = 2166136261u;

    private static uint Step(uint h, char c) => ((h ^ (byte)c) * 16777619u ^ (uint)(c >> 8)) * 16777619u;

    private static uint Hash(ReadOnlySpan<char> text, uint salt)
    {
        var h = Offset ^ salt;
        foreach (var c in text) h = Step(h, c);
        return h;
    }
}

/// <summary>Optional parts of <see cref="InjectionFeatures"/>; the value is stored in the model file.</summary>
[Flags]
public enum InjectionFeatureLayout
{
    None = 0,

    /// <summary>A text cut into several segments is scored by its segments only, not also as a whole (a clean document that shares all but one sentence with an attacked twin then has no instance that looks like the attack).</summary>
    SegmentsOnly = 1,

    /// <summary>One-hot length bucket of the instance and segment-count bucket of the text.</summary>
    Shape = 2,

    /// <summary>A segment carries the wording rules that match the segment itself (a match spanning segments is carried by all), not every rule the whole text hit.</summary>
    SegmentRules = 4,

    /// <summary>A segment of prose between the rows of a pipe table carries one extra feature (<see cref="Input.DocumentContext"/>).</summary>
    DocumentContext = 8,

    All = SegmentsOnly | Shape | SegmentRules | DocumentContext,
}

/// <summary>
/// Recognises a table in pipe syntax (the form tables take when an application passes retrieved
/// data to a model), so that a sentence of prose among its rows can be told from the same
/// sentence typed on its own: "Write a script to rename all files" is an ordinary request as a
/// prompt and a planted instruction between two rows of a box-office table. Clean tables have no
/// prose rows, so the feature separates them from their attacked copies; e-mails were tried the
/// same way and not kept (every line of an e-mail is prose, so the feature only marked e-mails).
/// </summary>
public sealed class DocumentContext
{
    private readonly bool[] _rows;
    private readonly int _firstRow;
    private readonly int _lastRow;

    private DocumentContext(bool[] rows)
    {
        _rows = rows;
        _firstRow = Array.IndexOf(rows, true);
        _lastRow = Array.LastIndexOf(rows, true);
    }

    /// <summary>Rows from which a text whose segments are at least half rows is a table.</summary>
    public const int MinTableRows = 3;

    /// <summary>The context of <paramref name="segments"/>, or null when they are not a table.</summary>
    public static DocumentContext? Of(IReadOnlyList<string> segments)
    {
        var rows = new bool[segments.Count];
        var count = 0;
        for (var i = 0; i < segments.Count; i++)
        {
            rows[i] = IsTableRow(segments[i]);
            if (rows[i]) count++;
        }
        return count >= MinTableRows && 2 * count >= segments.Count ? new DocumentContext(rows) : null;
    }

    /// <summary>
    /// Whether segment <paramref name="index"/> is prose with table rows both before and after it.
    /// Prose at the table's edge is not: there it is as often the user's own question about the
    /// table ("Which one is cheapest?") as a planted request, and the development split, whose only
    /// tables are BIPIA's, cannot teach the difference (a feature for edges blocked 106 of 120 such
    /// questions written to check it).
    /// </summary>
    public bool BetweenRows(int index) => !_rows[index] && index > _firstRow && index < _lastRow;

    /// <summary>A line of a pipe table: starts with <c>|</c> or holds at least two.</summary>
    public static bool IsTableRow(string segment)
    {
        if (segment.StartsWith('|')) return true;
        var pipes = 0;
        foreach (var c in segment)
        {
            if (c == '|' && ++pipes == 2) return true;
        }
        return false;
    }
}
