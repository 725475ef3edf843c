using System.Globalization;
using System.Text;

namespace Bulwark.Engine.Templates.Jinja;

/// <summary>
/// Python's <c>json.dumps</c>, which is what Hugging Face's <c>tojson</c> filter calls
/// (not Jinja's HTML-escaping one): same separators, indentation, key handling and string
/// escapes, so tool schemas render byte for byte as transformers renders them.
/// </summary>
internal sealed class PyJson
{
    private const int MaxDepth = 200;
    private readonly StringBuilder _sb = new();
    private readonly Renderer _renderer;
    private readonly bool _ensureAscii;
    private readonly string? _indent;
    private readonly string _itemSeparator;
    private readonly string _keySeparator;
    private readonly bool _sortKeys;

    private PyJson(Renderer renderer, bool ensureAscii, string? indent, (string Item, string Key)? separators, bool sortKeys)
    {
        _renderer = renderer;
        _ensureAscii = ensureAscii;
        _indent = indent;
        (_itemSeparator, _keySeparator) = separators ?? (indent is null ? (", ", ": ") : (",", ": "));
        _sortKeys = sortKeys;
    }

    public static string Dumps(Renderer renderer, object? value, bool ensureAscii = false, string? indent = null,
        (string Item, string Key)? separators = null, bool sortKeys = false)
    {
        var writer = new PyJson(renderer, ensureAscii, indent, separators, sortKeys);
        writer.Write(value, 0);
        return writer._sb.ToString();
    }

    private void Write(object? value, int depth)
    {
        if (depth > MaxDepth)
            throw TemplateException.Limit($"value nesting is deeper than {MaxDepth} levels");
        _renderer.CheckStringLength(_sb.Length);
        switch (value)
        {
            case null: _sb.Append("null"); break;
            case bool b: _sb.Append(b ? "true" : "false"); break;
            case long l: _sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d: _sb.Append(Float(d)); break;
            case string s: WriteString(s); break;
            case PyList list:
                if (list.Count == 0)
                {
                    _sb.Append("[]");
                    break;
                }
                _sb.Append('[');
                for (var i = 0; i < list.Count; i++)
                {
                    _sb.Append(i == 0 ? "" : _itemSeparator);
                    NewLine(depth + 1);
                    Write(list[i], depth + 1);
                }
                NewLine(depth);
                _sb.Append(']');
                break;
            case PyDict dict:
                WriteDict(dict, depth);
                break;
            default:
                throw TemplateException.Type($"Object of type {PyOps.TypeName(value)} is not JSON serializable");
        }
    }

    private void WriteDict(PyDict dict, int depth)
    {
        if (dict.Count == 0)
        {
            _sb.Append("{}");
            return;
        }
        IEnumerable<KeyValuePair<object, object?>> entries = dict;
        if (_sortKeys)
        {
            var sorted = dict.ToList();
            sorted.Sort((x, y) => PyOps.Compare(x.Key, y.Key, "<"));
            entries = sorted;
        }
        _sb.Append('{');
        var first = true;
        foreach (var (key, item) in entries)
        {
            _sb.Append(first ? "" : _itemSeparator);
            first = false;
            NewLine(depth + 1);
            WriteString(KeyText(key));
            _sb.Append(_keySeparator);
            Write(item, depth + 1);
        }
        NewLine(depth);
        _sb.Append('}');
    }

    private static string KeyText(object key) => key switch
    {
        string s => s,
        bool b => b ? "true" : "false",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => Float(d),
        _ => throw TemplateException.Type($"keys must be str, int, float, bool or None, not {PyOps.TypeName(key)}"),
    };

    private void NewLine(int depth)
    {
        if (_indent is null)
            return;
        _sb.Append('\n');
        for (var i = 0; i < depth; i++)
            _sb.Append(_indent);
    }

    private static string Float(double d) => double.IsNaN(d) ? "NaN"
        : double.IsPositiveInfinity(d) ? "Infinity"
        : double.IsNegativeInfinity(d) ? "-Infinity"
        : PyFormat.Float(d);

    private void WriteString(string s)
    {
        _sb.Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': _sb.Append("\\\""); break;
                case '\\': _sb.Append("\\\\"); break;
                case '\n': _sb.Append("\\n"); break;
                case '\r': _sb.Append("\\r"); break;
                case '\t': _sb.Append("\\t"); break;
                case '\b': _sb.Append("\\b"); break;
                case '\f': _sb.Append("\\f"); break;
                default:
                    if (c < 0x20 || (_ensureAscii && c > 0x7e))
                        _sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else
                        _sb.Append(c);
                    break;
            }
        }
        _sb.Append('"');
    }
}
