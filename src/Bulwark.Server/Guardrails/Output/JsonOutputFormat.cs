using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Bulwark.Engine.Serving.Constraints;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Guardrails.Output;

/// <summary>
/// <c>response_format</c> <c>json_object</c> or <c>json_schema</c>, checked on each choice's final text.
/// For models of the embedded engine this is the second line: decoding is constrained by the schema's
/// grammar (<see cref="Grammar"/>), so the check always passes there. For upstream models the text is
/// only checked. The check is a semantic validator of the keywords constrained decoding supports
/// (<see cref="JsonSchemaCompiler"/>), independent of the grammar: property order and whitespace are
/// free here. A schema with a keyword neither enforces is refused when the request arrives, so a
/// "valid" never rests on a rule that was silently skipped.
/// </summary>
public sealed class JsonOutputFormat
{
    public const int MaxSchemaDepth = 32;

    private static readonly TimeSpan PatternTimeout = TimeSpan.FromMilliseconds(200);

    private JsonOutputFormat(string type, JsonElement? schema, Grammar grammar)
    {
        Type = type;
        Schema = schema;
        Grammar = grammar;
    }

    /// <summary><c>json_object</c> or <c>json_schema</c>.</summary>
    public string Type { get; }

    /// <summary>The schema (a detached copy), for <c>json_schema</c>.</summary>
    public JsonElement? Schema { get; }

    /// <summary>The grammar constrained decoding enforces for this format.</summary>
    public Grammar Grammar { get; }

    private static readonly Lazy<Grammar> AnyObject = new(GrammarCompiler.JsonObject);

    public static JsonOutputFormat JsonObject() => new("json_object", null, AnyObject.Value);

    /// <summary>The format of a schema already compiled to <paramref name="grammar"/>.</summary>
    public static JsonOutputFormat ForSchema(JsonElement schema, Grammar grammar) => new("json_schema", schema.Clone(), grammar);

    /// <summary>The checker of a format the contract stage accepted (its schema was checked there).</summary>
    public static JsonOutputFormat Of(ResponseFormat format) =>
        new(format.Type, format.Schema, format.Grammar ?? (format.Schema is { } s ? GrammarCompiler.JsonSchema(s) : AnyObject.Value));

    /// <summary>The request vocabulary's description of this format.</summary>
    public ResponseFormat ToResponseFormat() => new(Type, Schema) { Grammar = Grammar };

    /// <summary>
    /// Compiles <paramref name="schema"/> for constrained decoding, which also decides what is supported;
    /// <see cref="ArgumentException"/> names the path (under <paramref name="path"/>) and the keyword.
    /// </summary>
    public static JsonOutputFormat JsonSchema(JsonElement schema, string path, ConstraintLimits? limits = null)
    {
        limits ??= new ConstraintLimits { MaxSchemaDepth = MaxSchemaDepth };
        try
        {
            return new JsonOutputFormat("json_schema", schema.Clone(), GrammarCompiler.JsonSchema(schema, limits, path));
        }
        catch (ConstraintException e)
        {
            throw new ArgumentException(e.Message, e);
        }
    }

    /// <summary>Checks a choice's final text.</summary>
    public FormatCheck Check(string text)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(text, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            return FormatCheck.Failed($"the output is not valid JSON: {e.Message}");
        }
        using (document)
        {
            var root = document.RootElement;
            if (Schema is not { } schema)
                return root.ValueKind == JsonValueKind.Object ? FormatCheck.Passed : FormatCheck.Failed($"$: the output must be a JSON object; got {Kind(root)}");
            var error = Validate(root, schema, schema, "$", 0);
            return error is null ? FormatCheck.Passed : FormatCheck.Failed(error);
        }
    }

    /// <summary>The first violation, as "path: what", or null.</summary>
    private static string? Validate(JsonElement value, JsonElement schema, JsonElement root, string path, int refs)
    {
        if (schema.ValueKind == JsonValueKind.True) return null;
        if (schema.ValueKind == JsonValueKind.False) return $"{path}: no value is allowed here";
        if (schema.TryGetProperty("$ref", out var reference))
        {
            if (refs > 64) return $"{path}: $ref nests too deep";
            return Validate(value, Resolve(root, reference.GetString()!), root, path, refs + 1);
        }
        foreach (var name in new[] { "anyOf", "oneOf" })
            if (schema.TryGetProperty(name, out var branches) && !branches.EnumerateArray().Any(b => Validate(value, b, root, path, refs) is null))
                return $"{path}: matches none of the {name} schemas";
        if (schema.TryGetProperty("allOf", out var all))
            foreach (var b in all.EnumerateArray())
                if (Validate(value, b, root, path, refs) is { } error) return error;
        if (schema.TryGetProperty("type", out var type))
        {
            var allowed = type.ValueKind == JsonValueKind.Array ? type.EnumerateArray().Select(t => t.GetString()!).ToList() : [type.GetString()!];
            if (!allowed.Any(t => IsType(value, t)))
                return $"{path}: expected {string.Join(" or ", allowed)}; got {Kind(value)}";
        }
        if (schema.TryGetProperty("const", out var constant) && !JsonElement.DeepEquals(constant, value))
            return $"{path}: {Short(value)} is not the constant {Short(constant)}";
        if (schema.TryGetProperty("enum", out var options) && !options.EnumerateArray().Any(o => JsonElement.DeepEquals(o, value)))
            return $"{path}: {Short(value)} is not one of the allowed values {Short(options)}";
        return value.ValueKind switch
        {
            JsonValueKind.Object => ValidateObject(value, schema, root, path, refs),
            JsonValueKind.Array => ValidateArray(value, schema, root, path, refs),
            JsonValueKind.String => ValidateString(value.GetString()!, schema, path),
            JsonValueKind.Number => ValidateNumber(value, schema, path),
            _ => null,
        };
    }

    private static string? ValidateObject(JsonElement value, JsonElement schema, JsonElement root, string path, int refs)
    {
        var properties = schema.TryGetProperty("properties", out var p) ? p : (JsonElement?)null;
        if (schema.TryGetProperty("required", out var required))
            foreach (var name in required.EnumerateArray())
                if (!value.TryGetProperty(name.GetString()!, out _)) return $"{path}: required property '{name.GetString()}' is missing";
        var additional = schema.TryGetProperty("additionalProperties", out var a) ? a : (JsonElement?)null;
        foreach (var member in value.EnumerateObject())
        {
            if (properties is { } props && props.TryGetProperty(member.Name, out var sub))
            {
                if (Validate(member.Value, sub, root, $"{path}.{member.Name}", refs) is { } error) return error;
            }
            else if (additional is { ValueKind: JsonValueKind.False }) return $"{path}: property '{member.Name}' is not allowed (additionalProperties is false)";
            else if (additional is { ValueKind: JsonValueKind.Object } extra && Validate(member.Value, extra, root, $"{path}.{member.Name}", refs) is { } error) return error;
        }
        return null;
    }

    private static string? ValidateArray(JsonElement value, JsonElement schema, JsonElement root, string path, int refs)
    {
        var count = value.GetArrayLength();
        if (schema.TryGetProperty("minItems", out var min) && count < min.GetInt32()) return $"{path}: expected at least {min.GetInt32()} items; got {count}";
        if (schema.TryGetProperty("maxItems", out var max) && count > max.GetInt32()) return $"{path}: expected at most {max.GetInt32()} items; got {count}";
        var prefix = schema.TryGetProperty("prefixItems", out var pi) ? pi.EnumerateArray().ToList() : [];
        var items = schema.TryGetProperty("items", out var it) ? it : (JsonElement?)null;
        var i = 0;
        foreach (var item in value.EnumerateArray())
        {
            var sub = i < prefix.Count ? prefix[i] : items;
            if (sub is { } s && Validate(item, s, root, $"{path}[{i}]", refs) is { } error) return error;
            i++;
        }
        return null;
    }

    private static string? ValidateString(string text, JsonElement schema, string path)
    {
        var length = text.EnumerateRunes().Count();
        if (schema.TryGetProperty("minLength", out var min) && length < min.GetInt32()) return $"{path}: expected at least {min.GetInt32()} characters; got {length}";
        if (schema.TryGetProperty("maxLength", out var max) && length > max.GetInt32()) return $"{path}: expected at most {max.GetInt32()} characters; got {length}";
        if (schema.TryGetProperty("pattern", out var pattern) && !Matches(text, pattern.GetString()!, anchored: false))
            return $"{path}: {Short(JsonSerializer.Serialize(text))} does not match the pattern";
        if (schema.TryGetProperty("format", out var format) && FormatPattern(format.GetString()) is { } f && !Matches(text, f, anchored: true))
            return $"{path}: {Short(JsonSerializer.Serialize(text))} is not a valid {format.GetString()}";
        return null;
    }

    private static string? ValidateNumber(JsonElement value, JsonElement schema, string path)
    {
        var x = double.Parse(value.GetRawText(), NumberStyles.Float, CultureInfo.InvariantCulture);
        if (schema.TryGetProperty("minimum", out var min) && x < min.GetDouble()) return $"{path}: {value.GetRawText()} is below the minimum {min.GetRawText()}";
        if (schema.TryGetProperty("maximum", out var max) && x > max.GetDouble()) return $"{path}: {value.GetRawText()} is above the maximum {max.GetRawText()}";
        if (schema.TryGetProperty("exclusiveMinimum", out var emin) && x <= emin.GetDouble()) return $"{path}: {value.GetRawText()} is not above {emin.GetRawText()}";
        if (schema.TryGetProperty("exclusiveMaximum", out var emax) && x >= emax.GetDouble()) return $"{path}: {value.GetRawText()} is not below {emax.GetRawText()}";
        return null;
    }

    /// <summary>ECMAScript semantics, as JSON Schema asks; the timeout bounds a pathological pattern.</summary>
    private static bool Matches(string text, string pattern, bool anchored)
    {
        try
        {
            return Regex.IsMatch(text, anchored ? $"^(?:{pattern})$" : pattern, RegexOptions.ECMAScript, PatternTimeout);
        }
        catch (RegexMatchTimeoutException)
        {
            return false;
        }
    }

    private static string? FormatPattern(string? format) => format switch
    {
        "uuid" => "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
        "ipv4" => "((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])",
        _ => null,
    };

    private static JsonElement Resolve(JsonElement root, string pointer)
    {
        var at = root;
        if (pointer.Length <= 1) return at;
        foreach (var raw in pointer[2..].Split('/'))
        {
            var part = Uri.UnescapeDataString(raw).Replace("~1", "/").Replace("~0", "~");
            at = at.ValueKind == JsonValueKind.Array ? at[int.Parse(part, CultureInfo.InvariantCulture)] : at.GetProperty(part);
        }
        return at;
    }

    private static bool IsType(JsonElement value, string type) => type switch
    {
        "object" => value.ValueKind == JsonValueKind.Object,
        "array" => value.ValueKind == JsonValueKind.Array,
        "string" => value.ValueKind == JsonValueKind.String,
        "number" => value.ValueKind == JsonValueKind.Number,
        "integer" => value.ValueKind == JsonValueKind.Number && IsInteger(value),
        "boolean" => value.ValueKind is JsonValueKind.True or JsonValueKind.False,
        "null" => value.ValueKind == JsonValueKind.Null,
        _ => false,
    };

    private static bool IsInteger(JsonElement number) =>
        number.TryGetInt64(out _) || (double.TryParse(number.GetRawText(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && Math.Floor(d) == d && double.IsFinite(d));

    private static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Number => IsInteger(e) ? "integer" : "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        _ => e.ValueKind.ToString().ToLowerInvariant(),
    };

    private static string Short(JsonElement e) => Short(e.GetRawText());

    private static string Short(string raw) => raw.Length <= 60 ? raw : raw[..57] + "...";
}
