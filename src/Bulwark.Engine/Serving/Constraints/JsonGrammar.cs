namespace Bulwark.Engine.Serving.Constraints;

/// <summary>
/// JSON's lexical pieces as grammar rules over UTF-8 bytes, shared by the JSON Schema compiler and
/// the plain JSON constraints. What it generates is a strict subset of RFC 8259, chosen so a model
/// cannot run forever inside one token class and so every output reads back the same everywhere:
/// <list type="bullet">
/// <item>whitespace between tokens is at most <see cref="MaxWhitespace"/> of space, tab, CR, LF, and
/// none before or after the value;</item>
/// <item>strings are valid UTF-8 with JSON's escapes, <c>\u</c> escapes outside the surrogate range
/// (a lone surrogate is not a character);</item>
/// <item>numbers have at most <see cref="MaxIntegerDigits"/> integer and <see cref="MaxFractionDigits"/>
/// fraction digits and no exponent, so they read back exactly as a double or a decimal;</item>
/// <item>objects and arrays of an unconstrained value nest at most <see cref="MaxNesting"/> deep.</item>
/// </list>
/// </summary>
public sealed class JsonGrammar
{
    public const int MaxWhitespace = 20;
    public const int MaxIntegerDigits = 15;
    public const int MaxFractionDigits = 15;
    public const int MaxNesting = 20;

    private readonly GrammarBuilder _b;
    private readonly Dictionary<int, int> _values = [];
    private readonly Dictionary<(int, int?), int> _strings = [];
    private int _ws = -1, _char = -1, _number = -1, _integer = -1, _sep = -1, _colon = -1;

    public JsonGrammar(GrammarBuilder builder) => _b = builder;

    public GrammarBuilder Builder => _b;

    /// <summary>Optional whitespace, bounded.</summary>
    public int Ws => _ws >= 0 ? _ws : _ws = _b.Repeat(_b.Bytes(ByteSet.OfChars(" \t\r\n")), 0, MaxWhitespace);

    /// <summary><c>ws , ws</c> between members and items.</summary>
    public int Comma => _sep >= 0 ? _sep : _sep = _b.Seq(Ws, _b.Byte((byte)','), Ws);

    /// <summary><c>ws : ws</c> between a key and its value.</summary>
    public int Colon => _colon >= 0 ? _colon : _colon = _b.Seq(Ws, _b.Byte((byte)':'), Ws);

    /// <summary>One character of string content: a UTF-8 encoded scalar (not <c>"</c>, <c>\</c> or a control) or an escape.</summary>
    public int Char
    {
        get
        {
            if (_char >= 0) return _char;
            var b = _b;
            var r = b.Rule();
            var cont = b.Bytes(ByteSet.Range(0x80, 0xBF));
            b.Alt(r, b.Bytes(ByteSet.Range(0x20, 0x7F).Except(ByteSet.OfChars("\"\\"))));
            b.Alt(r, b.Bytes(ByteSet.Range(0xC2, 0xDF)), cont);
            b.Alt(r, b.Byte(0xE0), b.Bytes(ByteSet.Range(0xA0, 0xBF)), cont);
            b.Alt(r, b.Bytes(ByteSet.Range(0xE1, 0xEC).Union(ByteSet.Range(0xEE, 0xEF))), cont, cont);
            b.Alt(r, b.Byte(0xED), b.Bytes(ByteSet.Range(0x80, 0x9F)), cont);
            b.Alt(r, b.Byte(0xF0), b.Bytes(ByteSet.Range(0x90, 0xBF)), cont, cont);
            b.Alt(r, b.Bytes(ByteSet.Range(0xF1, 0xF3)), cont, cont, cont);
            b.Alt(r, b.Byte(0xF4), b.Bytes(ByteSet.Range(0x80, 0x8F)), cont, cont);
            var backslash = b.Byte((byte)'\\');
            b.Alt(r, backslash, b.Bytes(ByteSet.OfChars("\"\\/bfnrt")));
            var hex = b.Bytes(ByteSet.OfChars("0123456789abcdefABCDEF"));
            var u = b.Byte((byte)'u');
            // \uXXXX outside D800–DFFF: a surrogate escape is not a character on its own.
            b.Alt(r, backslash, u, b.Bytes(ByteSet.OfChars("0123456789abcABCefEF")), hex, hex, hex);
            b.Alt(r, backslash, u, b.Bytes(ByteSet.OfChars("dD")), b.Bytes(ByteSet.OfChars("01234567")), hex, hex);
            return _char = r;
        }
    }

    /// <summary>A JSON string of <paramref name="minLength"/> to <paramref name="maxLength"/> characters (code points; an escape is one).</summary>
    public int String(int minLength = 0, int? maxLength = null)
    {
        if (_strings.TryGetValue((minLength, maxLength), out var r)) return r;
        var quote = _b.Byte((byte)'"');
        r = _b.Seq(quote, _b.Repeat(Char, minLength, maxLength), quote);
        _strings[(minLength, maxLength)] = r;
        return r;
    }

    /// <summary>An integer: <c>-?(0|[1-9][0-9]{0,14})</c>.</summary>
    public int Integer
    {
        get
        {
            if (_integer >= 0) return _integer;
            var r = _b.Rule();
            _b.Alt(r, UnsignedInteger);
            _b.Alt(r, _b.Byte((byte)'-'), UnsignedInteger);
            return _integer = r;
        }
    }

    private int _unsigned = -1;

    /// <summary><c>0|[1-9][0-9]{0,14}</c>.</summary>
    public int UnsignedInteger
    {
        get
        {
            if (_unsigned >= 0) return _unsigned;
            var r = _b.Rule();
            _b.Alt(r, _b.Byte((byte)'0'));
            _b.Alt(r, _b.Bytes(ByteSet.Range('1', '9')), _b.Repeat(_b.Bytes(ByteSet.Range('0', '9')), 0, MaxIntegerDigits - 1));
            return _unsigned = r;
        }
    }

    /// <summary>A number without exponent: an integer, optionally with 1 to 15 fraction digits; <paramref name="nonNegative"/> drops the sign.</summary>
    public int Number(bool nonNegative = false)
    {
        if (!nonNegative && _number >= 0) return _number;
        var fraction = _b.Seq(_b.Byte((byte)'.'), _b.Repeat(_b.Bytes(ByteSet.Range('0', '9')), 1, MaxFractionDigits));
        var optionalFraction = _b.Rule();
        _b.Alt(optionalFraction);
        _b.Alt(optionalFraction, fraction);
        var r = _b.Seq(nonNegative ? UnsignedInteger : Integer, optionalFraction);
        if (!nonNegative) _number = r;
        return r;
    }

    /// <summary>Any JSON value at nesting level <paramref name="depth"/> (objects and arrays only below <see cref="MaxNesting"/>).</summary>
    public int Value(int depth = 0)
    {
        if (_values.TryGetValue(depth, out var r)) return r;
        r = _b.Rule();
        _values[depth] = r;
        _b.Alt(r, String());
        _b.Alt(r, Number());
        _b.Alt(r, _b.Literal("true"));
        _b.Alt(r, _b.Literal("false"));
        _b.Alt(r, _b.Literal("null"));
        if (depth < MaxNesting)
        {
            _b.Alt(r, Object(depth));
            _b.Alt(r, Array(Value(depth + 1), 0, null));
        }
        return r;
    }

    /// <summary>Any JSON object at nesting level <paramref name="depth"/>.</summary>
    public int Object(int depth)
    {
        var member = _b.Seq(String(), Colon, Value(depth + 1));
        return Braces(_b.SeparatedList(member, Comma, 1, null), optional: true);
    }

    /// <summary><c>{ ws members ws }</c>; with <paramref name="optional"/>, also <c>{ ws }</c>.</summary>
    public int Braces(int members, bool optional)
    {
        var open = _b.Byte((byte)'{');
        var close = _b.Byte((byte)'}');
        var r = _b.Rule();
        _b.Alt(r, open, Ws, members, Ws, close);
        if (optional) _b.Alt(r, open, Ws, close);
        return r;
    }

    /// <summary>An array of <paramref name="min"/> to <paramref name="max"/> items.</summary>
    public int Array(int item, int min, int? max)
    {
        var open = _b.Byte((byte)'[');
        var close = _b.Byte((byte)']');
        var r = _b.Rule();
        if (max != 0) _b.Alt(r, open, Ws, _b.SeparatedList(item, Comma, Math.Max(1, min), max), Ws, close);
        if (min == 0) _b.Alt(r, open, Ws, close);
        return r;
    }
}
