using System.Globalization;
using System.Text.Json;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Guardrails.Output;

/// <summary>
/// <c>response_format</c> <c>json_object</c> or <c>json_schema</c>. Bulwark does not constrain
/// decoding: the model is free to write anything, and the final text of each choice is checked —
/// JSON that parses to an object (<c>json_object</c>), and for <c>json_schema</c> a subset of JSON
/// Schema: <c>type</c> (one or a list; <c>integer</c> is a number without a fraction), <c>properties</c>,
/// <c>required</c>, <c>additionalProperties</c> (true/false), <c>items</c>, <c>enum</c>. Annotations
/// (<c>title</c>, <c>description</c>, <c>$schema</c>, <c>default</c>, <c>examples</c>) are ignored;
/// any other keyword is refused when the request arrives, so a "valid" never rests on a rule that
/// was silently skipped.
/// </summary>
public sealed class JsonOutputFormat
{
    public const int MaxSchemaDepth = 32;

    private static readonly HashSet<string> Checked = ["type", "properties", "required", "additionalProperties", "items", "enum"];
    private static readonly HashSet<string> Annotations = ["title", "description", "$schema", "default", "examples", "$comment"];
    private static readonly HashSet<string> Types = ["object", "array", "string", "number", "integer", "boolean", "null"];

    private JsonOutputFormat(string type, JsonElement? schema)
    {
        Type = type;
        Schema = schema;
    }

    /// <summary><c>json_object</c> or <c>json_schema</c>.</summary>
    public string Type { get; }

    /// <summary>The schema (a detached copy), for <c>json_schema</c>.</summary>
    public JsonElement? Schema { get; }

    public static JsonOutputFormat JsonObject() => new("json_object", null);

    /// <summary>The checker of a format the contract stage accepted (its schema was checked there).</summary>
    public static JsonOutputFormat Of(ResponseFormat format) => new(format.Type, format.Schema);

    /// <summary>The request vocabulary's description of this format.</summary>
    public ResponseFormat ToResponseFormat() => new(Type, Schema);

    /// <summary>Checks <paramref name="schema"/> is within the supported subset; the error names the path (under <paramref name="path"/>) and the keyword.</summary>
    public static JsonOutputFormat JsonSchema(JsonElement schema, string path)
    {
        CheckSchema(schema, path, 0);
        return new JsonOutputFormat("json_schema", schema.Clone());
    }

    private static void CheckSchema(JsonElement schema, string path, int depth)
    {
        if (depth > MaxSchemaDepth) throw new ArgumentException($"{path}: schemas may nest at most {MaxSchemaDepth} levels deep");
        if (schema.ValueKind == JsonValueKind.True || schema.ValueKind == JsonValueKind.False) return;
        if (schema.ValueKind != JsonValueKind.Object) throw new ArgumentException($"{path} must be a JSON Schema object; got {schema.ValueKind.ToString().ToLowerInvariant()}");
        foreach (var p in schema.EnumerateObject())
        {
            var at = $"{path}.{p.Name}";
            if (Annotations.Contains(p.Name)) continue;
            if (!Checked.Contains(p.Name))
                throw new ArgumentException($"{at}: keyword '{p.Name}' is not supported by Bulwark's output validator (supported: {string.Join(", ", Checked)})");
            switch (p.Name)
            {
                case "type":
                    var names = p.Value.ValueKind == JsonValueKind.Array ? p.Value.EnumerateArray().ToList() : [p.Value];
                    foreach (var n in names)
                        if (n.ValueKind != JsonValueKind.String || !Types.Contains(n.GetString()!))
                            throw new ArgumentException($"{at} must be one of {string.Join(", ", Types)} (or a list of them); got {n.GetRawText()}");
                    break;
                case "properties":
                    if (p.Value.ValueKind != JsonValueKind.Object) throw new ArgumentException($"{at} must be an object of schemas");
                    foreach (var prop in p.Value.EnumerateObject()) CheckSchema(prop.Value, $"{at}.{prop.Name}", depth + 1);
                    break;
                case "required":
                    if (p.Value.ValueKind != JsonValueKind.Array || p.Value.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.String))
                        throw new ArgumentException($"{at} must be an array of property names");
                    break;
                case "additionalProperties":
                    if (p.Value.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
                        throw new ArgumentException($"{at} must be true or false here (schemas for additional properties are not supported)");
                    break;
                case "items":
                    CheckSchema(p.Value, at, depth + 1);
                    break;
                case "enum":
                    if (p.Value.ValueKind != JsonValueKind.Array || p.Value.GetArrayLength() == 0) throw new ArgumentException($"{at} must be a non-empty array");
                    break;
            }
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
            if (root.ValueKind != JsonValueKind.Object)
                return FormatCheck.Failed($"$: the output must be a JSON object; got {Kind(root)}");
            if (Schema is not { } schema) return FormatCheck.Passed;
            var error = Validate(root, schema, "$");
            return error is null ? FormatCheck.Passed : FormatCheck.Failed(error);
        }
    }

    /// <summary>The first violation, as "path: what", or null.</summary>
    private static string? Validate(JsonElement value, JsonElement schema, string path)
    {
        if (schema.ValueKind == JsonValueKind.True) return null;
        if (schema.ValueKind == JsonValueKind.False) return $"{path}: no value is allowed here";
        if (schema.TryGetProperty("type", out var type))
        {
            var allowed = type.ValueKind == JsonValueKind.Array ? type.EnumerateArray().Select(t => t.GetString()!).ToList() : [type.GetString()!];
            if (!allowed.Any(t => IsType(value, t)))
                return $"{path}: expected {string.Join(" or ", allowed)}; got {Kind(value)}";
        }
        if (schema.TryGetProperty("enum", out var options) && !options.EnumerateArray().Any(o => JsonElement.DeepEquals(o, value)))
            return $"{path}: {Short(value)} is not one of the allowed values {Short(options)}";
        if (value.ValueKind == JsonValueKind.Object)
        {
            var properties = schema.TryGetProperty("properties", out var p) ? p : (JsonElement?)null;
            if (schema.TryGetProperty("required", out var required))
                foreach (var name in required.EnumerateArray())
                    if (!value.TryGetProperty(name.GetString()!, out _)) return $"{path}: required property '{name.GetString()}' is missing";
            var closed = schema.TryGetProperty("additionalProperties", out var additional) && additional.ValueKind == JsonValueKind.False;
            foreach (var member in value.EnumerateObject())
            {
                if (properties is { } props && props.TryGetProperty(member.Name, out var sub))
                {
                    var error = Validate(member.Value, sub, $"{path}.{member.Name}");
                    if (error is not null) return error;
                }
                else if (closed) return $"{path}: property '{member.Name}' is not allowed (additionalProperties is false)";
            }
        }
        if (value.ValueKind == JsonValueKind.Array && schema.TryGetProperty("items", out var items))
        {
            var i = 0;
            foreach (var item in value.EnumerateArray())
            {
                var error = Validate(item, items, $"{path}[{i++}]");
                if (error is not null) return error;
            }
        }
        return null;
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

    private static string Short(JsonElement e)
    {
        var raw = e.GetRawText();
        return raw.Length <= 60 ? raw : raw[..57] + "...";
    }
}
