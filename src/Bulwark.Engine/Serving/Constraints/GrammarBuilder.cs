using System.Text;

namespace Bulwark.Engine.Serving.Constraints;

/// <summary>
/// Writes a <see cref="Grammar"/>: rules and their alternatives, where a symbol is a rule id (≥ 0) or
/// a terminal byte set (<see cref="Bytes"/>, negative). Compilers (JSON, JSON Schema, regular
/// expressions, choices) build on the helpers here; <see cref="Build"/> checks the size and removes
/// alternatives that can never finish.
/// </summary>
public sealed class GrammarBuilder(int maxItems = GrammarBuilder.DefaultMaxItems)
{
    public const int DefaultMaxItems = 1 << 20;

    private readonly List<List<int[]>> _rules = [];
    private readonly List<ByteSet> _classes = [];
    private readonly Dictionary<ByteSet, int> _classIds = [];
    private readonly Dictionary<string, int> _literals = new(StringComparer.Ordinal);
    private long _items;

    public int RuleCount => _rules.Count;

    /// <summary>A new rule with no alternatives yet.</summary>
    public int Rule()
    {
        _rules.Add([]);
        return _rules.Count - 1;
    }

    /// <summary>Adds an alternative to <paramref name="rule"/> (empty: ε).</summary>
    public void Alt(int rule, params int[] symbols)
    {
        _items += symbols.Length + 1;
        if (_items > maxItems)
            throw new ConstraintException("$", "size", $"the constraint compiles to more than {maxItems} grammar items; simplify it");
        _rules[rule].Add(symbols);
    }

    /// <summary>A terminal symbol matching one byte of <paramref name="set"/>.</summary>
    public int Bytes(ByteSet set)
    {
        if (!_classIds.TryGetValue(set, out var id))
        {
            id = _classes.Count;
            _classes.Add(set);
            _classIds.Add(set, id);
        }
        return ~id;
    }

    public int Byte(byte b) => Bytes(ByteSet.Of(b));

    /// <summary>A rule with one alternative: the symbols in order.</summary>
    public int Seq(params int[] symbols)
    {
        var r = Rule();
        Alt(r, symbols);
        return r;
    }

    /// <summary>A rule with one alternative per symbol list.</summary>
    public int Choice(IEnumerable<int[]> alternatives)
    {
        var r = Rule();
        foreach (var a in alternatives) Alt(r, a);
        return r;
    }

    /// <summary>A rule matching exactly the UTF-8 bytes of <paramref name="text"/> (shared between uses).</summary>
    public int Literal(string text)
    {
        if (_literals.TryGetValue(text, out var r)) return r;
        var bytes = Encoding.UTF8.GetBytes(text);
        r = Seq(Array.ConvertAll(bytes, Byte));
        _literals[text] = r;
        return r;
    }

    /// <summary>
    /// <paramref name="symbol"/> repeated <paramref name="min"/> to <paramref name="max"/> times (null: unbounded).
    /// Bounded repetition is a chain of rules, one per optional repetition (right-recursive, so a matcher's stack stays flat).
    /// </summary>
    public int Repeat(int symbol, int min, int? max)
    {
        if (max is { } m && m < min) throw new ArgumentOutOfRangeException(nameof(max));
        int tail;
        if (max is null)
        {
            tail = Rule();
            Alt(tail);
            Alt(tail, symbol, tail);
        }
        else
        {
            tail = Rule();
            Alt(tail);
            for (var i = 0; i < max.Value - min; i++)
            {
                var next = Rule();
                Alt(next);
                Alt(next, symbol, tail);
                tail = next;
            }
        }
        for (var i = 0; i < min; i++) tail = Seq(symbol, tail);
        return tail;
    }

    /// <summary>
    /// <paramref name="item"/> repeated between <paramref name="min"/> and <paramref name="max"/> times with
    /// <paramref name="separator"/> between repetitions.
    /// </summary>
    public int SeparatedList(int item, int separator, int min, int? max)
    {
        if (max == 0) return Seq();
        var rest = Repeat(Seq(separator, item), Math.Max(0, min - 1), max - 1);
        var nonEmpty = Seq(item, rest);
        if (min > 0) return nonEmpty;
        var r = Rule();
        Alt(r);
        Alt(r, nonEmpty);
        return r;
    }

    /// <summary>
    /// The grammar from <paramref name="start"/>. Alternatives that can never derive a finite string are
    /// removed, so a matcher never enters a branch it cannot finish; a start that derives nothing is refused.
    /// </summary>
    public Grammar Build(int start, string description)
    {
        var productive = Productive();
        if (!productive[start])
            throw new ConstraintException("$", "schema", "the constraint admits no finite value (every branch recurses without end or is empty)");
        var symbols = new List<int>();
        var firsts = new int[_rules.Count][];
        for (var r = 0; r < _rules.Count; r++)
        {
            var list = new List<int>();
            foreach (var alt in _rules[r])
            {
                if (!Array.TrueForAll(alt, s => s < 0 || productive[s])) continue;
                list.Add(symbols.Count);
                symbols.AddRange(alt);
                symbols.Add(Grammar.End);
            }
            firsts[r] = [.. list];
        }
        return new Grammar([.. symbols], firsts, [.. _classes], start, description);
    }

    private bool[] Productive()
    {
        var productive = new bool[_rules.Count];
        bool changed;
        do
        {
            changed = false;
            for (var r = 0; r < _rules.Count; r++)
            {
                if (productive[r]) continue;
                foreach (var alt in _rules[r])
                {
                    if (!Array.TrueForAll(alt, s => s < 0 || productive[s])) continue;
                    productive[r] = changed = true;
                    break;
                }
            }
        } while (changed);
        return productive;
    }
}
