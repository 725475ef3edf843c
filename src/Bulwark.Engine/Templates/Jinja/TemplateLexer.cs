using System.Globalization;
using System.Numerics;
using System.Text;

namespace Bulwark.Engine.Templates.Jinja;

/// <summary>
/// Splits template source into tokens the way Jinja2's lexer does under Hugging Face's settings
/// (<c>trim_blocks</c>, <c>lstrip_blocks</c>, <c>keep_trailing_newline=False</c>): the whitespace
/// rules live here, so the parser never sees whitespace that Jinja would have removed.
/// </summary>
internal sealed class TemplateLexer
{
    private static readonly string[] Operators =
    [
        "//", "**", "==", "!=", "<=", ">=",
        "+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}", "<", ">", "=", ".", ":", "|", ",", ";",
    ];

    private readonly string _src;
    private readonly List<Token> _tokens = [];
    private int _pos;
    private int _line = 1;
    private bool _lineStarting = true;

    private TemplateLexer(string source)
    {
        // Jinja normalizes every newline form to "\n" and drops one trailing newline.
        var normalized = source.Replace("\r\n", "\n").Replace('\r', '\n');
        if (normalized.EndsWith('\n'))
            normalized = normalized[..^1];
        _src = normalized;
    }

    public static List<Token> Tokenize(string source)
    {
        var lexer = new TemplateLexer(source);
        lexer.Run();
        return lexer._tokens;
    }

    private void Run()
    {
        while (_pos < _src.Length)
        {
            var tagAt = FindTagStart(_pos);
            if (tagAt < 0)
            {
                EmitData(_src[_pos..]);
                _pos = _src.Length;
                break;
            }

            var kind = _src[tagAt + 1];
            var sign = tagAt + 2 < _src.Length && (_src[tagAt + 2] == '-' || _src[tagAt + 2] == '+') ? _src[tagAt + 2] : '\0';
            var text = _src[_pos..tagAt];
            if (sign == '-')
                text = TrimEndWhitespace(text);
            else if (sign != '+' && kind != '{')
                text = LStripBlock(text);
            EmitData(text);
            _line += CountNewlines(_src, _pos, tagAt);
            _pos = tagAt + 2 + (sign == '\0' ? 0 : 1);

            switch (kind)
            {
                case '#':
                    LexComment();
                    break;
                case '%' when TryLexRaw():
                    break;
                case '%':
                    Add(TokenKind.BlockBegin, "{%", null);
                    LexTag("%}", TokenKind.BlockEnd, trimBlocks: true);
                    break;
                default:
                    Add(TokenKind.VariableBegin, "{{", null);
                    LexTag("}}", TokenKind.VariableEnd, trimBlocks: false);
                    break;
            }
        }
        Add(TokenKind.End, "", null);
    }

    private int FindTagStart(int from)
    {
        for (var i = _src.IndexOf('{', from); i >= 0 && i + 1 < _src.Length; i = _src.IndexOf('{', i + 1))
        {
            var c = _src[i + 1];
            if (c == '{' || c == '%' || c == '#')
                return i;
        }
        return -1;
    }

    // lstrip_blocks: remove spaces and tabs between the start of the line and a block or comment tag.
    private string LStripBlock(string text)
    {
        var lineStart = text.LastIndexOf('\n') + 1;
        if (lineStart == 0 && !_lineStarting)
            return text;
        for (var i = lineStart; i < text.Length; i++)
        {
            if (text[i] != ' ' && text[i] != '\t')
                return text;
        }
        return text[..lineStart];
    }

    private void LexComment()
    {
        var contentStart = _pos;
        var close = _src.IndexOf("#}", _pos, StringComparison.Ordinal);
        if (close < 0)
            throw Error("Missing end of comment tag");
        var mark = close > contentStart ? _src[close - 1] : '\0';
        _line += CountNewlines(_src, _pos, close);
        _pos = close + 2;
        FinishTagEnd(mark, trimBlocks: true);
    }

    // {% raw %}...{% endraw %}: the body is data, tags inside it are not interpreted.
    private bool TryLexRaw()
    {
        var i = SkipSpaces(_pos);
        if (string.CompareOrdinal(_src, i, "raw", 0, 3) != 0)
            return false;
        i = SkipSpaces(i + 3);
        var endMark = '\0';
        if (i < _src.Length && _src[i] == '-')
        {
            endMark = '-';
            i++;
        }
        if (string.CompareOrdinal(_src, i, "%}", 0, 2) != 0)
            return false;
        var bodyStart = i + 2;
        if (endMark == '-')
            bodyStart = SkipSpaces(bodyStart);
        for (var j = _src.IndexOf("{%", bodyStart, StringComparison.Ordinal); j >= 0; j = _src.IndexOf("{%", j + 2, StringComparison.Ordinal))
        {
            var k = j + 2;
            var sign = k < _src.Length && (_src[k] == '-' || _src[k] == '+') ? _src[k++] : '\0';
            k = SkipSpaces(k);
            if (string.CompareOrdinal(_src, k, "endraw", 0, 6) != 0)
                continue;
            k = SkipSpaces(k + 6);
            var closeSign = k < _src.Length && (_src[k] == '-' || _src[k] == '+') ? _src[k++] : '\0';
            if (string.CompareOrdinal(_src, k, "%}", 0, 2) != 0)
                continue;
            var body = _src[bodyStart..j];
            if (sign == '-')
                body = TrimEndWhitespace(body);
            EmitData(body);
            _line += CountNewlines(_src, _pos, k);
            _pos = k + 2;
            FinishTagEnd(closeSign, trimBlocks: true);
            return true;
        }
        throw Error("Missing end of raw directive");
    }

    private void LexTag(string close, TokenKind endKind, bool trimBlocks)
    {
        var balance = new Stack<char>();
        while (true)
        {
            if (_pos >= _src.Length)
                throw Error($"unexpected end of template, expected '{close}'");
            if (balance.Count == 0)
            {
                var mark = _src[_pos];
                var hasMark = (mark == '-' || mark == '+') && string.CompareOrdinal(_src, _pos + 1, close, 0, 2) == 0;
                if (hasMark || string.CompareOrdinal(_src, _pos, close, 0, 2) == 0)
                {
                    _pos += hasMark ? 3 : 2;
                    Add(endKind, close, null);
                    FinishTagEnd(hasMark ? mark : '\0', trimBlocks);
                    return;
                }
            }

            var c = _src[_pos];
            if (char.IsWhiteSpace(c))
            {
                if (c == '\n')
                    _line++;
                _pos++;
            }
            else if (char.IsAsciiLetter(c) || c == '_')
            {
                var start = _pos;
                while (_pos < _src.Length && (char.IsAsciiLetterOrDigit(_src[_pos]) || _src[_pos] == '_'))
                    _pos++;
                Add(TokenKind.Name, _src[start.._pos], null);
            }
            else if (char.IsAsciiDigit(c))
            {
                LexNumber();
            }
            else if (c == '\'' || c == '"')
            {
                LexString(c);
            }
            else
            {
                var op = Operators.FirstOrDefault(o => string.CompareOrdinal(_src, _pos, o, 0, o.Length) == 0)
                    ?? throw Error($"unexpected char '{c}'");
                switch (op)
                {
                    case "(" or "[" or "{":
                        balance.Push(op[0]);
                        break;
                    case ")" or "]" or "}":
                        var expected = op == ")" ? '(' : op == "]" ? '[' : '{';
                        if (balance.Count == 0 || balance.Pop() != expected)
                            throw Error($"unexpected '{op}'");
                        break;
                }
                _pos += op.Length;
                Add(TokenKind.Operator, op, null);
            }
        }
    }

    // After a tag closes: "-" strips all following whitespace, "+" keeps it, otherwise
    // trim_blocks removes one newline after a block or comment tag.
    private void FinishTagEnd(char mark, bool trimBlocks)
    {
        if (mark == '-')
        {
            var start = _pos;
            while (_pos < _src.Length && IsPythonSpace(_src[_pos]))
                _pos++;
            _line += CountNewlines(_src, start, _pos);
            _lineStarting = _pos > start ? _src[_pos - 1] == '\n' : false;
            return;
        }
        if (mark != '+' && trimBlocks && _pos < _src.Length && _src[_pos] == '\n')
        {
            _pos++;
            _line++;
            _lineStarting = true;
            return;
        }
        _lineStarting = false;
    }

    private void LexNumber()
    {
        var start = _pos;
        SkipDigits();
        var isFloat = false;
        if (_pos + 1 < _src.Length && _src[_pos] == '.' && char.IsAsciiDigit(_src[_pos + 1]))
        {
            isFloat = true;
            _pos++;
            SkipDigits();
        }
        if (_pos < _src.Length && (_src[_pos] == 'e' || _src[_pos] == 'E'))
        {
            var save = _pos;
            _pos++;
            if (_pos < _src.Length && (_src[_pos] == '+' || _src[_pos] == '-'))
                _pos++;
            if (_pos < _src.Length && char.IsAsciiDigit(_src[_pos]))
            {
                isFloat = true;
                SkipDigits();
            }
            else
            {
                _pos = save;
            }
        }
        var text = _src[start.._pos];
        var digits = text.Replace("_", "");
        if (isFloat)
        {
            Add(TokenKind.Float, text, double.Parse(digits, NumberStyles.Float, CultureInfo.InvariantCulture));
            return;
        }
        var big = BigInteger.Parse(digits, CultureInfo.InvariantCulture);
        if (big > long.MaxValue)
            throw Error($"integer literal {text} is larger than {long.MaxValue}");
        Add(TokenKind.Integer, text, (long)big);
    }

    private void SkipDigits()
    {
        while (_pos < _src.Length && (char.IsAsciiDigit(_src[_pos]) || (_src[_pos] == '_' && _pos + 1 < _src.Length && char.IsAsciiDigit(_src[_pos + 1]))))
            _pos++;
    }

    private void LexString(char quote)
    {
        var start = _pos++;
        var sb = new StringBuilder();
        while (true)
        {
            if (_pos >= _src.Length)
                throw Error("unexpected end of string literal");
            var c = _src[_pos++];
            if (c == quote)
                break;
            if (c == '\n')
                _line++;
            if (c != '\\')
            {
                sb.Append(c);
                continue;
            }
            if (_pos >= _src.Length)
                throw Error("unexpected end of string literal");
            StringEscapes.Decode(_src, ref _pos, sb, Error);
        }
        Add(TokenKind.String, _src[start.._pos], sb.ToString());
    }

    private int SkipSpaces(int i)
    {
        while (i < _src.Length && IsPythonSpace(_src[i]))
            i++;
        return i;
    }

    private void EmitData(string text)
    {
        if (text.Length > 0)
            _tokens.Add(new Token(TokenKind.Data, text, text, _line));
    }

    private void Add(TokenKind kind, string text, object? value) => _tokens.Add(new Token(kind, text, value, _line));

    private TemplateException Error(string message) => new(TemplateErrorKind.Syntax, $"{message} (line {_line})", _line);

    private static int CountNewlines(string s, int from, int to)
    {
        var n = 0;
        for (var i = from; i < to; i++)
        {
            if (s[i] == '\n')
                n++;
        }
        return n;
    }

    internal static bool IsPythonSpace(char c) => char.IsWhiteSpace(c) || (c >= '\x1c' && c <= '\x1f');

    internal static string TrimEndWhitespace(string s)
    {
        var end = s.Length;
        while (end > 0 && IsPythonSpace(s[end - 1]))
            end--;
        return s[..end];
    }
}
