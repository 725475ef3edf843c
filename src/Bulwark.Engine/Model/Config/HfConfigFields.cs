using System.Text.Json;
using Bulwark.Engine.Formats;

namespace Bulwark.Engine.Model.Config;

/// <summary>
/// Typed, range-checked reads from one JSON object of a Hugging Face config.json. Every error
/// names the file, the key (with its parent, e.g. <c>rope_scaling.factor</c>) and the bad value.
/// </summary>
internal readonly struct HfConfigFields(JsonElement element, string file, string prefix = "")
{
    public string File => file;

    public ModelFormatException Error(string key, string problem) => new(file, prefix + key, problem);

    /// <summary>The value of <paramref name="key"/>; JSON null counts as absent, as transformers treats it.</summary>
    public bool TryGet(string key, out JsonElement value)
    {
        if (element.TryGetProperty(key, out value) && value.ValueKind != JsonValueKind.Null) return true;
        value = default;
        return false;
    }

    public bool Has(string key) => TryGet(key, out _);

    /// <summary>Whether the key is present with the value null (transformers' None, which some keys distinguish from absent).</summary>
    public bool IsNull(string key) => element.TryGetProperty(key, out var value) && value.ValueKind == JsonValueKind.Null;

    public HfConfigFields? Object(string key)
    {
        if (!TryGet(key, out var value)) return null;
        if (value.ValueKind != JsonValueKind.Object) throw Error(key, $"must be an object; got {Show(value)}");
        return new HfConfigFields(value, file, $"{prefix}{key}.");
    }

    public int Int(string key, long min, long max, int? fallback = null)
    {
        if (!TryGet(key, out var value)) return fallback ?? throw Error(key, "is missing");
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out var number))
            throw Error(key, $"must be an integer; got {Show(value)}");
        if (number < min || number > max) throw Error(key, $"must be between {min} and {max}; got {number}");
        return (int)number;
    }

    public double Number(string key, double fallback)
    {
        if (!TryGet(key, out var value)) return fallback;
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out var number) || !double.IsFinite(number))
            throw Error(key, $"must be a finite number; got {Show(value)}");
        return number;
    }

    /// <summary>A number strictly above <paramref name="min"/> and at most <paramref name="max"/>.</summary>
    public double Number(string key, double fallback, double min, double max)
    {
        var number = Number(key, fallback);
        if (!(number > min && number <= max)) throw Error(key, $"must be above {min} and at most {max}; got {number}");
        return number;
    }

    public bool Bool(string key, bool fallback)
    {
        if (!TryGet(key, out var value)) return fallback;
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Error(key, $"must be true or false; got {Show(value)}"),
        };
    }

    public string? String(string key)
    {
        if (!TryGet(key, out var value)) return null;
        return value.ValueKind == JsonValueKind.String ? value.GetString() : throw Error(key, $"must be a string; got {Show(value)}");
    }

    /// <summary>Text from the file for an error message, cut short.</summary>
    public static string Cut(string text) => ShownText.Of(text, 80);

    /// <summary>A JSON value for an error message, cut short so a hostile config cannot flood the log.</summary>
    public static string Show(JsonElement value)
    {
        return Cut(value.GetRawText());
    }
}
