using System.Collections;
using System.Globalization;
using System.Text.Json;

namespace Bulwark.Engine.Templates.Jinja;

/// <summary>
/// Turns request data into template values with the meaning Python's <c>json.loads</c> gives
/// them: objects keep their key order, "1" is an int and "1.0" a float, so a rendering matches
/// what transformers produces from the same JSON.
/// </summary>
public static class TemplateValues
{
    public static object? FromJson(JsonElement element) => Convert(element, 0);

    /// <summary>Parses JSON text (a messages array, a tools array, a variable's value).</summary>
    public static object? FromJson(string json)
    {
        using var document = JsonDocument.Parse(json);
        return FromJson(document.RootElement);
    }

    /// <summary>
    /// Converts a plain .NET value: null, bool, integers, floating point, string, JsonElement,
    /// dictionaries with string keys, and sequences. Anything else is refused, so no arbitrary
    /// .NET object can reach a template.
    /// </summary>
    public static object? FromClr(object? value) => value switch
    {
        null => null,
        bool or long or double or string => value,
        int or short or byte or sbyte or ushort or uint => System.Convert.ToInt64(value, CultureInfo.InvariantCulture),
        float f => (double)f,
        decimal m => (double)m,
        JsonElement e => FromJson(e),
        IDictionary dict => FromDictionary(dict),
        IEnumerable items => new PyList(items.Cast<object?>().Select(FromClr)),
        _ => throw new ArgumentException($"a template variable cannot hold a value of type {value.GetType().Name}", nameof(value)),
    };

    private static PyDict FromDictionary(IDictionary dict)
    {
        var result = new PyDict();
        foreach (DictionaryEntry entry in dict)
        {
            if (entry.Key is not string key)
                throw new ArgumentException("template dictionaries need string keys", nameof(dict));
            result.Put(key, FromClr(entry.Value));
        }
        return result;
    }

    private static object? Convert(JsonElement element, int depth)
    {
        if (depth > 200)
            throw TemplateException.Limit("JSON value nesting is deeper than 200 levels");
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                var dict = new PyDict();
                foreach (var property in element.EnumerateObject())
                    dict.Put(property.Name, Convert(property.Value, depth + 1));
                return dict;
            case JsonValueKind.Array:
                var list = new PyList();
                foreach (var item in element.EnumerateArray())
                    list.Add(Convert(item, depth + 1));
                return list;
            case JsonValueKind.String:
                return element.GetString();
            case JsonValueKind.Number:
                var raw = element.GetRawText();
                if (raw.AsSpan().IndexOfAny('.', 'e', 'E') < 0 && element.TryGetInt64(out var integer))
                    return integer;
                return element.GetDouble();
            case JsonValueKind.True:
                return true;
            case JsonValueKind.False:
                return false;
            default:
                return null;
        }
    }
}
