using System.Globalization;
using System.Text.Json;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Api;

/// <summary>
/// Typed, range-checked reads of one JSON object's fields. A missing field and an explicit
/// <c>null</c> both mean "use the default", as in OpenAI's API; unknown fields are ignored.
/// Every failure is an <see cref="ApiException"/> naming the field (with its path), the value and the limit.
/// Strings read safely: <see cref="JsonBody"/> has refused any body holding one that does not decode.
/// </summary>
public readonly struct JsonFields
{
    private readonly JsonElement _object;
    private readonly string _prefix;

    public JsonFields(JsonElement element, string path)
    {
        if (element.ValueKind != JsonValueKind.Object)
            throw ApiException.WrongType(path.Length == 0 ? "body" : path, "an object", Kind(element));
        _object = element;
        _prefix = path.Length == 0 ? "" : path + ".";
    }

    public string PathOf(string name) => _prefix + name;

    /// <summary>The field's value, or null when absent or JSON null.</summary>
    public JsonElement? Get(string name) =>
        _object.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;

    public bool Has(string name) => Get(name) is not null;

    public double? Number(string name, double min, double max, bool minExclusive = false)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number) throw ApiException.WrongType(PathOf(name), "a number", Kind(v));
        // JSON numbers have no bounds: 1e400 reads as infinity, which no range holds.
        if (!v.TryGetDouble(out var x) || !double.IsFinite(x) || x > max || (minExclusive ? x <= min : x < min))
            throw ApiException.OutOfRange(PathOf(name), Raw(v), minExclusive ? $"greater than {Show(min)} and at most {Show(max)}" : $"between {Show(min)} and {Show(max)}");
        return x;
    }

    public long? Integer(string name, long min, long max)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number) throw ApiException.WrongType(PathOf(name), "an integer", Kind(v));
        if (!v.TryGetInt64(out var x))
            throw ApiException.Invalid(PathOf(name), $"{PathOf(name)} must be an integer between {min} and {max}; got {Raw(v)}.", "invalid_type");
        if (x < min || x > max) throw ApiException.OutOfRange(PathOf(name), x, $"between {min} and {max}");
        return x;
    }

    public bool? Boolean(string name)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind is not (JsonValueKind.True or JsonValueKind.False)) throw ApiException.WrongType(PathOf(name), "a boolean", Kind(v));
        return v.GetBoolean();
    }

    public string? String(string name, int maxLength) => StringValue(name, maxLength)?.GetString();

    /// <summary>The field as a string value of at most <paramref name="maxLength"/> characters, checked without making the string.</summary>
    public JsonElement? StringValue(string name, int maxLength)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.String) throw ApiException.WrongType(PathOf(name), "a string", Kind(v));
        RefuseLonger(v, PathOf(name), maxLength);
        return v;
    }

    /// <summary>
    /// Refuses a string value over <paramref name="maxLength"/> UTF-16 characters from its raw text in the body, so a
    /// field far over its limit is refused before it is copied (the raw length bounds the characters from above, so
    /// a value within it costs no pass).
    /// </summary>
    public static void RefuseLonger(JsonElement value, string path, int maxLength)
    {
        if (JsonStringSize.RawLength(value) <= maxLength) return;
        var length = JsonStringSize.Of(value).Utf16Length;
        if (length > maxLength)
            throw ApiException.Invalid(path, $"{path} must be at most {maxLength} characters; got {length}.", "string_above_max_length");
    }

    public string RequiredString(string name, int maxLength) =>
        String(name, maxLength) ?? throw ApiException.Invalid(PathOf(name), $"{PathOf(name)} is required.", "missing_required_parameter");

    public JsonFields? Object(string name) => Get(name) is { } v ? new JsonFields(v, PathOf(name)) : null;

    /// <summary>The field as an array of at most <paramref name="maxCount"/> items.</summary>
    public JsonElement? Array(string name, int minCount, int maxCount)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Array) throw ApiException.WrongType(PathOf(name), "an array", Kind(v));
        var count = v.GetArrayLength();
        if (count < minCount || count > maxCount)
            throw ApiException.Invalid(PathOf(name), $"{PathOf(name)} must have between {minCount} and {maxCount} items; got {count}.",
                count < minCount ? "array_below_min_length" : "array_above_max_length");
        return v;
    }

    public static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => $"the number {Raw(e)}",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => "nothing",
    };

    /// <summary>A number as the client wrote it, cut short: a body may hold a number of a million digits.</summary>
    public static string Raw(JsonElement number)
    {
        var text = number.GetRawText();
        return text.Length <= 32 ? text : text[..32] + "...";
    }

    private static string Show(double x) => x.ToString("R", CultureInfo.InvariantCulture);
}
