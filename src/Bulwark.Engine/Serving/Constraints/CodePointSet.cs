namespace Bulwark.Engine.Serving.Constraints;

/// <summary>A set of Unicode scalar values as sorted, disjoint, non-adjacent ranges (surrogates never included).</summary>
internal sealed class CodePointSet
{
    public const int MaxCodePoint = 0x10FFFF;

    private CodePointSet(List<(int Lo, int Hi)> ranges) => Ranges = ranges;

    public List<(int Lo, int Hi)> Ranges { get; }

    public static CodePointSet Of(params (int Lo, int Hi)[] ranges) => Normalize(ranges);

    public static CodePointSet Single(int c) => Of((c, c));

    public static CodePointSet Any => Of((0, MaxCodePoint));

    public CodePointSet Union(CodePointSet other) => Normalize([.. Ranges, .. other.Ranges]);

    public CodePointSet Complement()
    {
        var result = new List<(int, int)>();
        var next = 0;
        foreach (var (lo, hi) in Ranges)
        {
            if (lo > next) result.Add((next, lo - 1));
            next = hi + 1;
        }
        if (next <= MaxCodePoint) result.Add((next, MaxCodePoint));
        return Normalize(result);
    }

    private static CodePointSet Normalize(IEnumerable<(int Lo, int Hi)> input)
    {
        var split = new List<(int Lo, int Hi)>();
        foreach (var (lo, hi) in input)
        {
            // Surrogates are not scalar values: UTF-8 cannot encode them.
            if (hi < 0xD800 || lo > 0xDFFF) split.Add((lo, hi));
            else
            {
                if (lo < 0xD800) split.Add((lo, 0xD7FF));
                if (hi > 0xDFFF) split.Add((0xE000, hi));
            }
        }
        split.Sort();
        var merged = new List<(int Lo, int Hi)>();
        foreach (var r in split)
        {
            if (merged.Count > 0 && r.Lo <= merged[^1].Hi + 1)
                merged[^1] = (merged[^1].Lo, Math.Max(merged[^1].Hi, r.Hi));
            else merged.Add(r);
        }
        return new CodePointSet(merged);
    }

    /// <summary>
    /// The ranges as UTF-8 byte-range sequences: each sequence matches a rectangle of encodings, and
    /// together they match exactly the set's encodings (the construction of Rust's regex-syntax utf8 module).
    /// </summary>
    public List<(byte Lo, byte Hi)[]> Utf8Sequences()
    {
        var result = new List<(byte, byte)[]>();
        foreach (var (lo, hi) in Ranges) Split(lo, hi, result);
        return result;
    }

    private static void Split(int lo, int hi, List<(byte, byte)[]> result)
    {
        if (lo > hi) return;
        foreach (var boundary in new[] { 0x7F, 0x7FF, 0xFFFF })
            if (lo <= boundary && hi > boundary)
            {
                Split(lo, boundary, result);
                Split(boundary + 1, hi, result);
                return;
            }
        if (hi <= 0x7F)
        {
            result.Add([((byte)lo, (byte)hi)]);
            return;
        }
        var n = Length(lo);
        for (var i = 1; i < n; i++)
        {
            var m = (1 << (6 * i)) - 1;
            if ((lo & ~m) != (hi & ~m))
            {
                if ((lo & m) != 0)
                {
                    Split(lo, lo | m, result);
                    Split((lo | m) + 1, hi, result);
                    return;
                }
                if ((hi & m) != m)
                {
                    Split(lo, (hi & ~m) - 1, result);
                    Split(hi & ~m, hi, result);
                    return;
                }
            }
        }
        var a = Encode(lo);
        var b = Encode(hi);
        var seq = new (byte, byte)[a.Length];
        for (var i = 0; i < a.Length; i++) seq[i] = (a[i], b[i]);
        result.Add(seq);
    }

    private static int Length(int c) => c <= 0x7F ? 1 : c <= 0x7FF ? 2 : c <= 0xFFFF ? 3 : 4;

    private static byte[] Encode(int c) => System.Text.Encoding.UTF8.GetBytes(char.ConvertFromUtf32(c));
}
