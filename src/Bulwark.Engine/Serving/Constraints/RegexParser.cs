using System.Globalization;
using System.Text;

namespace Bulwark.Engine.Serving.Constraints;

/// <summary>
/// Reads the regular part of the common regex dialects (ECMAScript, Python, .NET): literals, escapes
/// (<c>\d \w \s</c> and their negations as ASCII classes, <c>\n \t \r \f \v \0 \xHH \uHHHH</c>, escaped
/// punctuation), classes with ranges and negation, <c>.</c> (anything but newline), groups (capturing,
/// <c>(?:…)</c>, named), alternation, <c>* + ? {n} {n,} {n,m}</c> and their lazy forms (same language).
/// <c>^</c> and <c>$</c> are accepted only at the very start and end. Anything that is not regular or
/// not implemented (backreferences, lookaround, word boundaries, inline flags, Unicode properties,
/// possessive quantifiers) is refused with its position, never ignored.
/// </summary>
internal sealed class RegexParser
{
    private static readonly CodePointSet Digit = CodePointSet.Of(('0', '9'));
    private static readonly CodePointSet Word = CodePointSet.Of(('0', '9'), ('A', 'Z'), ('a', 'z'), ('_', '_'));
    private static readonly CodePointSet Space = CodePointSet.Of((' ', ' '), ('\t', '\r'));

    private readonly string _path;
    private readonly int _maxRepeat;
    private int _pos;

    private int[] Cps { get; }

    private RegexParser(int[] cps, string path, int maxRepeat)
    {
        Cps = cps;
        _path = path;
        _maxRepeat = maxRepeat;
    }

    /// <summary>The pattern as a tree; <paramref name="startAnchored"/>/<paramref name="endAnchored"/> report a leading <c>^</c> / trailing <c>$</c>.</summary>
    public static RegexNode Parse(string pattern, string path, int maxRepeat, out bool startAnchored, out bool endAnchored)
    {
        var cps = pattern.EnumerateRunes().Select(r => r.Value).ToArray();
        startAnchored = cps.Length > 0 && cps[0] == '^';
        var from = startAnchored ? 1 : 0;
        endAnchored = cps.Length > from && cps[^1] == '$' && !EscapedAt(cps, cps.Length - 1);
        var parser = new RegexParser(cps[from..(endAnchored ? cps.Length - 1 : cps.Length)], path, maxRepeat);
        var node = parser.ParseAlternation();
        if (!parser.AtEnd) throw parser.Error($"unbalanced ')' at position {parser._pos + from}");
        return node;
    }

    private static bool EscapedAt(int[] cps, int i)
    {
        var backslashes = 0;
        for (var j = i - 1; j >= 0 && cps[j] == '\\'; j--) backslashes++;
        return backslashes % 2 == 1;
    }

    private ConstraintException Error(string what) => new(_path, "pattern", $"{_path}: the regular expression cannot be enforced: {what}");

    private bool AtEnd => _pos >= Cps.Length;

    private int Peek => Cps[_pos];

    private RegexNode ParseAlternation()
    {
        var options = new List<RegexNode> { ParseConcat() };
        while (!AtEnd && Peek == '|')
        {
            _pos++;
            options.Add(ParseConcat());
        }
        return options.Count == 1 ? options[0] : new RegexNode.Alternation(options);
    }

    private RegexNode ParseConcat()
    {
        var parts = new List<RegexNode>();
        while (!AtEnd && Peek != '|' && Peek != ')') parts.Add(ParseRepeat());
        return parts.Count == 1 ? parts[0] : new RegexNode.Concat(parts);
    }

    private RegexNode ParseRepeat()
    {
        var atom = ParseAtom();
        while (!AtEnd)
        {
            int min;
            int? max;
            switch (Peek)
            {
                case '*': min = 0; max = null; _pos++; break;
                case '+': min = 1; max = null; _pos++; break;
                case '?': min = 0; max = 1; _pos++; break;
                case '{' when TryBraces(out min, out max): break;
                default: return atom;
            }
            if (!AtEnd && Peek == '?') _pos++; // lazy: the same language
            else if (!AtEnd && Peek == '+') throw Error($"possessive quantifier at position {_pos}");
            atom = new RegexNode.Repeat(atom, min, max);
        }
        return atom;
    }

    private bool TryBraces(out int min, out int? max)
    {
        min = 0;
        max = null;
        var close = Array.IndexOf(Cps, '}', _pos);
        if (close < 0) return false;
        var body = string.Concat(Cps[(_pos + 1)..close].Select(c => char.ConvertFromUtf32(c)));
        var parts = body.Split(',');
        if (parts.Length > 2 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out min)) return false;
        if (parts.Length == 2 && parts[1].Length > 0)
        {
            if (!int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var m)) return false;
            max = m;
        }
        else if (parts.Length == 1) max = min;
        if (max < min) throw Error($"repetition {{{body}}} has its maximum below its minimum");
        if (min > _maxRepeat || max > _maxRepeat) throw Error($"repetition {{{body}}} exceeds the limit of {_maxRepeat}");
        _pos = close + 1;
        return true;
    }

    private RegexNode ParseAtom()
    {
        var c = Peek;
        switch (c)
        {
            case '(':
                _pos++;
                if (!AtEnd && Peek == '?')
                {
                    _pos++;
                    if (!AtEnd && Peek == ':') _pos++;
                    else if (!AtEnd && (Peek == '<' || Peek == 'P') && _pos + 1 < Cps.Length && Cps[_pos + 1] is not ('=' or '!'))
                    {
                        var close = Array.IndexOf(Cps, '>', _pos);
                        if (close < 0) throw Error($"unterminated group name at position {_pos}");
                        _pos = close + 1;
                    }
                    else throw Error($"lookaround and inline flags '(?{(AtEnd ? "" : char.ConvertFromUtf32(Peek))}' are not supported (position {_pos})");
                }
                var inner = ParseAlternation();
                if (AtEnd || Peek != ')') throw Error("unbalanced '('");
                _pos++;
                return inner;
            case '[':
                _pos++;
                return new RegexNode.Set(ParseClass());
            case '.':
                _pos++;
                return new RegexNode.Set(CodePointSet.Single('\n').Complement());
            case '\\':
                _pos++;
                return new RegexNode.Set(ParseEscape(inClass: false));
            case '^' or '$':
                throw Error($"anchor '{(char)c}' is only supported at the start or end of the pattern (position {_pos})");
            case '*' or '+' or '?':
                throw Error($"quantifier '{(char)c}' with nothing to repeat at position {_pos}");
            default:
                _pos++;
                return new RegexNode.Set(CodePointSet.Single(c));
        }
    }

    private CodePointSet ParseClass()
    {
        var negate = !AtEnd && Peek == '^';
        if (negate) _pos++;
        var ranges = CodePointSet.Of();
        var first = true;
        while (true)
        {
            if (AtEnd) throw Error("unterminated character class");
            if (Peek == ']' && !first)
            {
                _pos++;
                break;
            }
            first = false;
            CodePointSet item;
            int? single = null;
            if (Peek == '\\')
            {
                _pos++;
                item = ParseEscape(inClass: true);
                if (item.Ranges is [var (lo, hi)] && lo == hi) single = lo;
            }
            else
            {
                single = Peek;
                _pos++;
                if (single == '[' && !AtEnd && Peek == ':') throw Error("POSIX classes like [:alpha:] are not supported");
                item = CodePointSet.Single(single.Value);
            }
            if (single is { } from && _pos + 1 < Cps.Length && Peek == '-' && Cps[_pos + 1] != ']')
            {
                _pos++;
                int to;
                if (Peek == '\\')
                {
                    _pos++;
                    var end = ParseEscape(inClass: true);
                    if (end.Ranges is not [var (l, h)] || l != h) throw Error("a class range must end in a single character");
                    to = l;
                }
                else to = Cps[_pos++];
                if (to < from) throw Error($"class range {char.ConvertFromUtf32(from)}-{char.ConvertFromUtf32(to)} is reversed");
                item = CodePointSet.Of((from, to));
            }
            ranges = ranges.Union(item);
        }
        return negate ? ranges.Complement() : ranges;
    }

    private CodePointSet ParseEscape(bool inClass)
    {
        if (AtEnd) throw Error("pattern ends with '\\'");
        var c = Cps[_pos++];
        switch (c)
        {
            case 'd': return Digit;
            case 'D': return Digit.Complement();
            case 'w': return Word;
            case 'W': return Word.Complement();
            case 's': return Space;
            case 'S': return Space.Complement();
            case 'n': return CodePointSet.Single('\n');
            case 't': return CodePointSet.Single('\t');
            case 'r': return CodePointSet.Single('\r');
            case 'f': return CodePointSet.Single('\f');
            case 'v': return CodePointSet.Single('\v');
            case '0': return CodePointSet.Single(0);
            case 'x': return CodePointSet.Single(Hex(2));
            case 'u': return CodePointSet.Single(Hex(4));
            case 'b' when inClass: return CodePointSet.Single('\b');
            default:
                if (c < 128 && char.IsLetterOrDigit((char)c))
                    throw Error($"escape '\\{(char)c}' is not supported (backreferences, word boundaries, Unicode classes are not regular or not implemented)");
                return CodePointSet.Single(c);
        }
    }

    private int Hex(int digits)
    {
        if (_pos + digits > Cps.Length) throw Error("truncated hexadecimal escape");
        var text = new StringBuilder();
        for (var i = 0; i < digits; i++) text.Append((char)Cps[_pos + i]);
        if (!int.TryParse(text.ToString(), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var value))
            throw Error($"invalid hexadecimal escape '{text}'");
        _pos += digits;
        return value;
    }
}
