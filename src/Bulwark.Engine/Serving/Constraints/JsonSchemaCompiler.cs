using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Bulwark.Engine.Serving.Constraints;

/// <summary>
/// JSON Schema to grammar. Supported: <c>type</c> (one or a list), <c>properties</c>, <c>required</c>,
/// <c>additionalProperties</c> (false, true or a schema: only declared properties are generated, which
/// every one of these allows), <c>enum</c>, <c>const</c>, <c>items</c>, <c>prefixItems</c>,
/// <c>minItems</c>/<c>maxItems</c>, <c>anyOf</c>, <c>oneOf</c> (enforced as anyOf: an output may match
/// more than one branch), <c>allOf</c> of one schema, <c>$ref</c> to <c>#</c>, <c>#/$defs/…</c>,
/// <c>#/definitions/…</c> (recursion unrolled <see cref="ConstraintLimits.MaxRefDepth"/> deep),
/// <c>minLength</c>/<c>maxLength</c>, <c>pattern</c>, <c>format</c> uuid/ipv4, integer
/// <c>minimum</c>/<c>maximum</c>/<c>exclusiveMinimum</c>/<c>exclusiveMaximum</c>, number <c>minimum: 0</c>.
/// Properties are generated in the schema's order, required ones always, optional ones maybe.
/// Any other keyword is refused with its path, never ignored.
/// </summary>
public sealed class JsonSchemaCompiler
{
    private static readonly HashSet<string> Annotations =
        ["title", "description", "$schema", "default", "examples", "$comment", "$id", "deprecated", "readOnly", "writeOnly", "$defs", "definitions"];

    private static readonly HashSet<string> Types = ["object", "array", "string", "number", "integer", "boolean", "null"];

    private static readonly Dictionary<string, string> Formats = new()
    {
        ["uuid"] = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
        ["ipv4"] = "((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])",
    };

    private static readonly JsonSerializerOptions Canonical = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private readonly GrammarBuilder _b;
    private readonly JsonGrammar _json;
    private readonly JsonElement _root;
    private readonly ConstraintLimits _limits;
    private readonly Dictionary<(string, int), int> _refs = [];

    private JsonSchemaCompiler(JsonGrammar json, JsonElement root, ConstraintLimits limits)
    {
        _b = json.Builder;
        _json = json;
        _root = root;
        _limits = limits;
    }

    /// <summary>The grammar of JSON texts valid against <paramref name="schema"/>; errors name a path under <paramref name="path"/>.</summary>
    public static Grammar Compile(JsonElement schema, ConstraintLimits? limits = null, string path = "$")
    {
        limits ??= ConstraintLimits.Default;
        var json = new JsonGrammar(new GrammarBuilder(limits.MaxGrammarItems));
        return json.Builder.Build(Rule(json, schema, limits, path), "json_schema");
    }

    /// <summary>
    /// The rule of JSON texts valid against <paramref name="schema"/>, written into <paramref name="json"/>'s builder so a
    /// larger grammar (a tool call around each function's parameters) can use it; <c>$ref</c>s resolve within <paramref name="schema"/>.
    /// </summary>
    public static int Rule(JsonGrammar json, JsonElement schema, ConstraintLimits limits, string path) =>
        new JsonSchemaCompiler(json, schema, limits).Schema(schema, path, 0, 0);

    /// <summary>Any JSON value (<paramref name="objectOnly"/>: any JSON object, as <c>json_object</c> asks).</summary>
    public static Grammar AnyJson(bool objectOnly)
    {
        var b = new GrammarBuilder();
        var json = new JsonGrammar(b);
        return b.Build(objectOnly ? json.Object(0) : json.Value(0), objectOnly ? "json_object" : "json");
    }

    private static ConstraintException Refuse(string path, string keyword, string why) => new(path, keyword, $"{path}: {why}");

    private int Schema(JsonElement s, string path, int depth, int refDepth)
    {
        if (depth > _limits.MaxSchemaDepth)
            throw Refuse(path, "depth", $"schemas may nest at most {_limits.MaxSchemaDepth} levels deep");
        if (s.ValueKind == JsonValueKind.True) return _json.Value(0);
        if (s.ValueKind == JsonValueKind.False) throw Refuse(path, "false", "the schema false admits no value");
        if (s.ValueKind != JsonValueKind.Object) throw Refuse(path, "schema", $"a schema must be an object or a boolean; got {Kind(s)}");

        var keys = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var p in s.EnumerateObject())
            if (!Annotations.Contains(p.Name)) keys[p.Name] = p.Value;

        if (keys.Remove("$ref", out var reference))
        {
            RefuseOthers(path, "$ref", keys);
            return Ref(reference, $"{path}.$ref", depth, refDepth);
        }
        if (keys.Remove("allOf", out var allOf))
        {
            if (allOf.ValueKind != JsonValueKind.Array || allOf.GetArrayLength() != 1)
                throw Refuse($"{path}.allOf", "allOf", "allOf is supported only with exactly one schema (intersections are not enforced)");
            RefuseOthers(path, "allOf", keys);
            return Schema(allOf[0], $"{path}.allOf[0]", depth + 1, refDepth);
        }
        foreach (var name in new[] { "anyOf", "oneOf" })
        {
            if (!keys.Remove(name, out var branches)) continue;
            if (branches.ValueKind != JsonValueKind.Array || branches.GetArrayLength() == 0)
                throw Refuse($"{path}.{name}", name, $"{name} must be a non-empty array of schemas");
            if (branches.GetArrayLength() > _limits.MaxBranches)
                throw Refuse($"{path}.{name}", name, $"{name} may hold at most {_limits.MaxBranches} schemas; got {branches.GetArrayLength()}");
            RefuseOthers(path, name, keys);
            var r = _b.Rule();
            var i = 0;
            foreach (var branch in branches.EnumerateArray())
            {
                _b.Alt(r, Schema(branch, $"{path}.{name}[{i}]", depth + 1, refDepth));
                i++;
            }
            return r;
        }

        var types = TypesOf(keys, path);
        if (keys.Remove("const", out var constant))
        {
            RefuseOthers(path, "const", keys);
            return Literal(constant, types, $"{path}.const");
        }
        if (keys.Remove("enum", out var values))
        {
            if (values.ValueKind != JsonValueKind.Array || values.GetArrayLength() == 0)
                throw Refuse($"{path}.enum", "enum", "enum must be a non-empty array");
            if (values.GetArrayLength() > _limits.MaxEnumValues)
                throw Refuse($"{path}.enum", "enum", $"enum may hold at most {_limits.MaxEnumValues} values; got {values.GetArrayLength()}");
            RefuseOthers(path, "enum", keys);
            var r = _b.Rule();
            var kept = 0;
            foreach (var v in values.EnumerateArray())
                if (types is null || types.Contains(TypeOf(v)) || (TypeOf(v) == "integer" && types.Contains("number")))
                {
                    _b.Alt(r, _b.Literal(JsonSerializer.Serialize(v, Canonical)));
                    kept++;
                }
            if (kept == 0) throw Refuse($"{path}.enum", "enum", "no enum value has the schema's type");
            return r;
        }

        types ??= Inferred(keys);
        var rule = _b.Rule();
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var type in types)
            _b.Alt(rule, type switch
            {
                "object" => Object(keys, path, depth, refDepth, used),
                "array" => Array(keys, path, depth, refDepth, used),
                "string" => String(keys, path, used),
                "integer" => Integer(keys, path, used),
                "number" => Number(keys, path, used),
                "boolean" => Boolean(),
                _ => _b.Literal("null"),
            });
        foreach (var key in keys.Keys)
            if (!used.Contains(key) && !AppliesToOtherType(key))
                throw Refuse($"{path}.{key}", key, $"keyword '{key}' is not supported by constrained decoding");
        return rule;
    }

    /// <summary>Keywords of a type the schema does not allow are vacuous (they constrain values of that type only); unknown ones are refused.</summary>
    private static bool AppliesToOtherType(string key) => key is "properties" or "required" or "additionalProperties" or "items" or "prefixItems"
        or "minItems" or "maxItems" or "minLength" or "maxLength" or "pattern" or "format" or "minimum" or "maximum" or "exclusiveMinimum" or "exclusiveMaximum";

    private static void RefuseOthers(string path, string keyword, Dictionary<string, JsonElement> keys)
    {
        foreach (var key in keys.Keys)
            if (key != "type")
                throw Refuse($"{path}.{key}", key, $"keyword '{key}' beside '{keyword}' is not supported by constrained decoding (use one or the other)");
    }

    private HashSet<string>? TypesOf(Dictionary<string, JsonElement> keys, string path)
    {
        if (!keys.Remove("type", out var type)) return null;
        var list = type.ValueKind == JsonValueKind.Array ? type.EnumerateArray().ToList() : [type];
        var result = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in list)
            if (t.ValueKind != JsonValueKind.String || !Types.Contains(t.GetString()!))
                throw Refuse($"{path}.type", "type", $"type must be one of {string.Join(", ", Types)} (or a list of them); got {t.GetRawText()}");
            else result.Add(t.GetString()!);
        if (result.Count == 0) throw Refuse($"{path}.type", "type", "type must name at least one type");
        // integer is a number; asking for both is asking for number.
        if (result.Contains("number")) result.Remove("integer");
        return result;
    }

    /// <summary>Without <c>type</c>: the types the keywords speak of, or every type when none do.</summary>
    private static HashSet<string> Inferred(Dictionary<string, JsonElement> keys)
    {
        var result = new HashSet<string>(StringComparer.Ordinal);
        foreach (var key in keys.Keys)
        {
            if (key is "properties" or "required" or "additionalProperties") result.Add("object");
            if (key is "items" or "prefixItems" or "minItems" or "maxItems") result.Add("array");
            if (key is "minLength" or "maxLength" or "pattern" or "format") result.Add("string");
            if (key is "minimum" or "maximum" or "exclusiveMinimum" or "exclusiveMaximum") result.Add("number");
        }
        return result.Count > 0 ? result : [.. Types.Where(t => t != "integer")];
    }

    private int Ref(JsonElement reference, string path, int depth, int refDepth)
    {
        if (reference.ValueKind != JsonValueKind.String) throw Refuse(path, "$ref", "$ref must be a string");
        var pointer = reference.GetString()!;
        if (_refs.TryGetValue((pointer, refDepth), out var known)) return known;
        var rule = _b.Rule();
        _refs[(pointer, refDepth)] = rule;
        // Past the unrolling depth the reference derives nothing: the branches that need it are dropped.
        if (refDepth >= _limits.MaxRefDepth) return rule;
        var target = Resolve(pointer, path);
        _b.Alt(rule, Schema(target, pointer, depth + 1, refDepth + 1));
        return rule;
    }

    private JsonElement Resolve(string pointer, string path)
    {
        if (!pointer.StartsWith('#'))
            throw Refuse(path, "$ref", $"only local references (#, #/$defs/…) are supported; got '{pointer}'");
        var at = _root;
        if (pointer.Length == 1) return at;
        if (pointer[1] != '/') throw Refuse(path, "$ref", $"anchors are not supported; got '{pointer}'");
        foreach (var raw in pointer[2..].Split('/'))
        {
            var part = Uri.UnescapeDataString(raw).Replace("~1", "/").Replace("~0", "~");
            if (at.ValueKind == JsonValueKind.Object && at.TryGetProperty(part, out var next)) at = next;
            else if (at.ValueKind == JsonValueKind.Array && int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var i) && i < at.GetArrayLength()) at = at[i];
            else throw Refuse(path, "$ref", $"'{pointer}' does not resolve within the schema");
        }
        return at;
    }

    private int Literal(JsonElement value, HashSet<string>? types, string path)
    {
        var type = TypeOf(value);
        if (types is not null && !types.Contains(type) && !(type == "integer" && types.Contains("number")))
            throw Refuse(path, "const", "the const value does not have the schema's type");
        return _b.Literal(JsonSerializer.Serialize(value, Canonical));
    }

    private int Object(Dictionary<string, JsonElement> keys, string path, int depth, int refDepth, HashSet<string> used)
    {
        used.UnionWith(["properties", "required", "additionalProperties"]);
        var properties = new List<(string Name, JsonElement Schema)>();
        if (keys.TryGetValue("properties", out var props))
        {
            if (props.ValueKind != JsonValueKind.Object) throw Refuse($"{path}.properties", "properties", "properties must be an object of schemas");
            // A property whose schema is false may never appear: it is simply not generated.
            foreach (var p in props.EnumerateObject())
                if (p.Value.ValueKind != JsonValueKind.False) properties.Add((p.Name, p.Value));
                else if (keys.TryGetValue("required", out var r) && r.ValueKind == JsonValueKind.Array && r.EnumerateArray().Any(e => e.ValueKind == JsonValueKind.String && e.GetString() == p.Name))
                    throw Refuse($"{path}.properties.{p.Name}", "false", $"property '{p.Name}' is required but its schema is false");
        }
        if (properties.Count > _limits.MaxProperties)
            throw Refuse($"{path}.properties", "properties", $"an object may declare at most {_limits.MaxProperties} properties; got {properties.Count}");
        var required = new HashSet<string>(StringComparer.Ordinal);
        if (keys.TryGetValue("required", out var req))
        {
            if (req.ValueKind != JsonValueKind.Array || req.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.String))
                throw Refuse($"{path}.required", "required", "required must be an array of property names");
            foreach (var name in req.EnumerateArray()) required.Add(name.GetString()!);
        }
        var closed = false;
        if (keys.TryGetValue("additionalProperties", out var additional))
        {
            if (additional.ValueKind == JsonValueKind.False) closed = true;
            else if (additional.ValueKind is not (JsonValueKind.True or JsonValueKind.Object))
                throw Refuse($"{path}.additionalProperties", "additionalProperties", "additionalProperties must be a boolean or a schema");
        }
        foreach (var name in required)
            if (!properties.Exists(p => p.Name == name))
            {
                if (closed) throw Refuse($"{path}.required", "required", $"required property '{name}' is not declared and additionalProperties is false");
                // A required property without a schema of its own takes the additional-properties schema, or any value.
                properties.Add((name, additional.ValueKind == JsonValueKind.Object ? additional : default));
            }
        if (properties.Count == 0 && !closed && additional.ValueKind != JsonValueKind.Object)
            return _json.Object(0);

        // Members from the end: rest[i][hasPrevious] emits properties i.. with a comma first when something came before.
        var restWith = _b.Seq();
        var restWithout = _b.Seq();
        var colon = _json.Colon;
        var comma = _json.Comma;
        for (var i = properties.Count - 1; i >= 0; i--)
        {
            var (name, schema) = properties[i];
            var at = $"{path}.properties.{name}";
            var value = schema.ValueKind == JsonValueKind.Undefined ? _json.Value(1) : Schema(schema, at, depth + 1, refDepth);
            var member = _b.Seq(_b.Literal(JsonSerializer.Serialize(name, Canonical)), colon, value);
            var with = _b.Rule();
            var without = _b.Rule();
            _b.Alt(with, comma, member, restWith);
            _b.Alt(without, member, restWith);
            if (!required.Contains(name))
            {
                _b.Alt(with, restWith);
                _b.Alt(without, restWithout);
            }
            (restWith, restWithout) = (with, without);
        }
        var open = _b.Byte((byte)'{');
        var close = _b.Byte((byte)'}');
        // With nothing required the members may be none: "{ ws ws }", at most twice the whitespace bound.
        return _b.Seq(open, _json.Ws, restWithout, _json.Ws, close);
    }

    private int Array(Dictionary<string, JsonElement> keys, string path, int depth, int refDepth, HashSet<string> used)
    {
        used.UnionWith(["items", "prefixItems", "minItems", "maxItems"]);
        var min = Count(keys, "minItems", path) ?? 0;
        var max = Count(keys, "maxItems", path);
        if (max < min) throw Refuse($"{path}.maxItems", "maxItems", $"maxItems ({max}) is below minItems ({min})");
        if (max > _limits.MaxRepeat) max = _limits.MaxRepeat; // fewer items than allowed is still valid
        var prefix = new List<int>();
        if (keys.TryGetValue("prefixItems", out var prefixItems))
        {
            if (prefixItems.ValueKind != JsonValueKind.Array) throw Refuse($"{path}.prefixItems", "prefixItems", "prefixItems must be an array of schemas");
            var i = 0;
            foreach (var p in prefixItems.EnumerateArray()) prefix.Add(Schema(p, $"{path}.prefixItems[{i++}]", depth + 1, refDepth));
        }
        int? item = null;
        if (keys.TryGetValue("items", out var items))
        {
            if (items.ValueKind != JsonValueKind.False) item = Schema(items, $"{path}.items", depth + 1, refDepth);
        }
        else item = _json.Value(1);
        if (prefix.Count == 0)
        {
            if (item is null)
            {
                if (min > 0) throw Refuse($"{path}.minItems", "minItems", "items is false, so no array can reach minItems");
                return _json.Array(_json.Value(1), 0, 0);
            }
            return _json.Array(item.Value, min, max);
        }
        // A tuple: every prefix item is generated (a shorter array would also be valid, a subset suffices), then items.
        if (max < prefix.Count) throw Refuse($"{path}.prefixItems", "prefixItems", $"maxItems ({max}) is below the number of prefixItems ({prefix.Count})");
        var open = _b.Byte((byte)'[');
        var close = _b.Byte((byte)']');
        var seq = new List<int> { open, _json.Ws };
        for (var i = 0; i < prefix.Count; i++)
        {
            if (i > 0) seq.Add(_json.Comma);
            seq.Add(prefix[i]);
        }
        if (item is { } rest)
        {
            var extraMin = Math.Max(0, min - prefix.Count);
            var extraMax = max - prefix.Count;
            seq.Add(_b.Repeat(_b.Seq(_json.Comma, rest), extraMin, extraMax));
        }
        else if (min > prefix.Count) throw Refuse($"{path}.minItems", "minItems", "items is false, so no array can reach minItems");
        seq.Add(_json.Ws);
        seq.Add(close);
        return _b.Seq([.. seq]);
    }

    private int String(Dictionary<string, JsonElement> keys, string path, HashSet<string> used)
    {
        used.UnionWith(["minLength", "maxLength", "pattern", "format"]);
        var min = Count(keys, "minLength", path);
        var max = Count(keys, "maxLength", path);
        if (max < min) throw Refuse($"{path}.maxLength", "maxLength", $"maxLength ({max}) is below minLength ({min})");
        if (min > _limits.MaxRepeat) throw Refuse($"{path}.minLength", "minLength", $"minLength may be at most {_limits.MaxRepeat}; got {min}");
        if (max > _limits.MaxRepeat) max = _limits.MaxRepeat;
        string? pattern = null;
        var search = true;
        var keyword = "pattern";
        if (keys.TryGetValue("pattern", out var p))
        {
            if (p.ValueKind != JsonValueKind.String) throw Refuse($"{path}.pattern", "pattern", "pattern must be a string");
            pattern = p.GetString()!;
        }
        if (keys.TryGetValue("format", out var f))
        {
            var name = f.ValueKind == JsonValueKind.String ? f.GetString()! : f.GetRawText();
            if (!Formats.TryGetValue(name, out var formatPattern))
                throw Refuse($"{path}.format", "format", $"format '{name}' is not supported by constrained decoding (supported: {string.Join(", ", Formats.Keys)})");
            if (pattern is not null) throw Refuse($"{path}.format", "format", "format beside pattern is not supported");
            pattern = formatPattern;
            search = false;
            keyword = "format";
        }
        if (pattern is not null)
        {
            if (min is not null || max is not null)
                throw Refuse($"{path}.{keyword}", keyword, $"{keyword} together with minLength/maxLength is not supported");
            var quote = _b.Byte((byte)'"');
            return _b.Seq(quote, RegexAutomaton.Compile(_b, pattern, $"{path}.{keyword}", _limits, RegexAutomaton.Mode.JsonString, search), quote);
        }
        return _json.String(min ?? 0, max);
    }

    private int Integer(Dictionary<string, JsonElement> keys, string path, HashSet<string> used)
    {
        used.UnionWith(["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]);
        const long limit = 999_999_999_999_999; // MaxIntegerDigits nines
        var lo = -limit;
        var hi = limit;
        if (Bound(keys, "minimum", path) is { } min) lo = Math.Max(lo, (long)Math.Ceiling(min));
        if (Bound(keys, "exclusiveMinimum", path) is { } emin) lo = Math.Max(lo, (long)Math.Floor(emin) + 1);
        if (Bound(keys, "maximum", path) is { } max) hi = Math.Min(hi, (long)Math.Floor(max));
        if (Bound(keys, "exclusiveMaximum", path) is { } emax) hi = Math.Min(hi, (long)Math.Ceiling(emax) - 1);
        if (lo > hi) throw Refuse($"{path}.minimum", "minimum", "no integer lies between the schema's bounds");
        if (lo == -limit && hi == limit) return _json.Integer;
        return RegexAutomaton.Compile(_b, IntegerRange.Pattern(lo, hi), $"{path}.minimum", _limits, RegexAutomaton.Mode.Raw, search: false);
    }

    private int Number(Dictionary<string, JsonElement> keys, string path, HashSet<string> used)
    {
        used.UnionWith(["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]);
        foreach (var k in new[] { "maximum", "exclusiveMinimum", "exclusiveMaximum" })
            if (keys.ContainsKey(k))
                throw Refuse($"{path}.{k}", k, $"'{k}' on a number is not enforced by constrained decoding (integer ranges are; a number supports only minimum 0)");
        if (Bound(keys, "minimum", path) is { } min)
        {
            if (min != 0) throw Refuse($"{path}.minimum", "minimum", "a number's minimum is enforced only when it is 0 (integer ranges are enforced in full)");
            return _json.Number(nonNegative: true);
        }
        return _json.Number();
    }

    private int Boolean()
    {
        var r = _b.Rule();
        _b.Alt(r, _b.Literal("true"));
        _b.Alt(r, _b.Literal("false"));
        return r;
    }

    private static double? Bound(Dictionary<string, JsonElement> keys, string name, string path)
    {
        if (!keys.TryGetValue(name, out var v)) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out var d) || !double.IsFinite(d))
            throw Refuse($"{path}.{name}", name, $"{name} must be a number");
        if (Math.Abs(d) > 1e15) throw Refuse($"{path}.{name}", name, $"{name} must be within ±1e15; got {v.GetRawText()}");
        return d;
    }

    private static int? Count(Dictionary<string, JsonElement> keys, string name, string path)
    {
        if (!keys.TryGetValue(name, out var v)) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out var n) || n < 0)
            throw Refuse($"{path}.{name}", name, $"{name} must be a non-negative integer; got {v.GetRawText()}");
        return n;
    }

    private static string TypeOf(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.Object => "object",
        JsonValueKind.Array => "array",
        JsonValueKind.String => "string",
        JsonValueKind.Number => v.TryGetInt64(out _) ? "integer" : "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        _ => "null",
    };

    private static string Kind(JsonElement e) => e.ValueKind.ToString().ToLowerInvariant();
}
