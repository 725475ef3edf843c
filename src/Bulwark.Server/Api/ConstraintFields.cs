using System.Text;
using System.Text.Json;
using Bulwark.Engine.Serving.Constraints;
using Bulwark.Server.Guardrails.Output;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Api;

/// <summary>
/// Stage 4 for structured output: OpenAI's <c>response_format</c> (<c>json_object</c>, <c>json_schema</c>
/// with <c>strict</c> true or false: both are enforced), vLLM's <c>guided_json</c>, <c>guided_regex</c>,
/// <c>guided_choice</c>, and TGI's <c>parameters.grammar</c> (<c>json</c>, <c>regex</c>), each compiled
/// here to the grammar the embedded engine decodes under. At most one may be given. A constraint that
/// cannot be enforced or is over a limit is a 400 naming the path and the keyword.
/// </summary>
public static class ConstraintFields
{
    /// <summary>Chat (<paramref name="responseFormat"/>) and completions: the constraint, and the JSON format to check afterwards (response_format only).</summary>
    public static (OutputConstraint? Constraint, JsonOutputFormat? Format) Read(JsonFields f, ApiLimits limits, bool responseFormat)
    {
        var limit = limits.Constraints;
        OutputConstraint? constraint = null;
        JsonOutputFormat? format = null;
        void Take(OutputConstraint c)
        {
            if (constraint is not null)
                throw ApiException.Invalid(c.Field, $"Only one of response_format (json_object, json_schema), guided_json, guided_regex, guided_choice may be given; got {constraint.Field} and {c.Field}.");
            constraint = c;
        }

        if (responseFormat && f.Object("response_format") is { } rf)
        {
            var type = rf.RequiredString("type", 32);
            if (type is not ("text" or "json_object" or "json_schema"))
                throw ApiException.Invalid("response_format.type", $"response_format.type must be 'text', 'json_object' or 'json_schema'; got '{type}'.");
            if (type == "json_object") format = JsonOutputFormat.JsonObject();
            if (type == "json_schema")
            {
                var spec = rf.Object("json_schema") ?? throw ApiException.Invalid("response_format.json_schema", "response_format.json_schema is required when response_format.type is 'json_schema'.", "missing_required_parameter");
                spec.Boolean("strict"); // both values are enforced: strict only changes what OpenAI does with keywords it does not support
                spec.String("name", 64);
                const string path = "response_format.json_schema.schema";
                var schema = spec.Get("schema") ?? throw ApiException.Invalid(path, $"{path} is required.", "missing_required_parameter");
                CheckSize(schema, path, limits);
                format = JsonOutputFormat.ForSchema(schema, Compile("json_schema", schema.GetRawText(), limit, () => GrammarCompiler.JsonSchema(schema, limit, path)));
            }
            if (format is not null) Take(new OutputConstraint("response_format", format.Grammar) { Schema = format.Schema });
        }
        if (f.Get("guided_json") is { } guidedJson)
        {
            var schema = guidedJson.ValueKind == JsonValueKind.String ? ParseSchemaText(guidedJson.GetString()!, "guided_json", limits) : guidedJson;
            CheckSize(schema, "guided_json", limits);
            Take(new OutputConstraint("guided_json", Compile("json_schema", schema.GetRawText(), limit, () => GrammarCompiler.JsonSchema(schema, limit, "guided_json"))) { Schema = schema.Clone() });
        }
        if (f.String("guided_regex", limits.MaxRegexLength) is { } regex)
            Take(new OutputConstraint("guided_regex", Compile("regex", regex, limit, () => GrammarCompiler.Regex(regex, limit, "guided_regex"))) { Pattern = regex });
        if (f.Array("guided_choice", 1, limits.MaxGuidedChoices) is { } choiceArray)
        {
            var choices = new List<string>();
            var i = 0;
            foreach (var c in choiceArray.EnumerateArray())
            {
                if (c.ValueKind != JsonValueKind.String) throw ApiException.WrongType($"guided_choice[{i}]", "a string", JsonFields.Kind(c));
                choices.Add(c.GetString()!);
                i++;
            }
            Take(new OutputConstraint("guided_choice", Compile("choice", string.Join('\0', choices), limit, () => GrammarCompiler.Choice(choices, limit, "guided_choice"))) { Choices = choices });
        }
        if (f.Has("guided_grammar"))
            throw ApiException.Unsupported("guided_grammar", "guided_grammar (EBNF) is not supported by this server; use guided_json, guided_regex or guided_choice.");
        return (constraint, format);
    }

    /// <summary>TGI's <c>parameters.grammar</c>: <c>{"type": "json", "value": schema}</c> or <c>{"type": "regex", "value": pattern}</c>.</summary>
    public static OutputConstraint? Tgi(JsonFields parameters, ApiLimits limits)
    {
        if (parameters.Object("grammar") is not { } g) return null;
        var type = g.RequiredString("type", 32);
        var valuePath = g.PathOf("value");
        var value = g.Get("value") ?? throw ApiException.Invalid(valuePath, $"{valuePath} is required.", "missing_required_parameter");
        switch (type)
        {
            case "json":
                var schema = value.ValueKind == JsonValueKind.String ? ParseSchemaText(value.GetString()!, valuePath, limits) : value;
                CheckSize(schema, valuePath, limits);
                return new OutputConstraint(g.PathOf("type"), Compile("json_schema", schema.GetRawText(), limits.Constraints, () => GrammarCompiler.JsonSchema(schema, limits.Constraints, valuePath))) { Schema = schema.Clone() };
            case "regex":
                var pattern = g.String("value", limits.MaxRegexLength)!;
                return new OutputConstraint(g.PathOf("type"), Compile("regex", pattern, limits.Constraints, () => GrammarCompiler.Regex(pattern, limits.Constraints, valuePath))) { Pattern = pattern };
            default:
                throw ApiException.Invalid(g.PathOf("type"), $"{g.PathOf("type")} must be 'json' or 'regex'; got '{type}'.");
        }
    }

    /// <summary>The cached grammar of an equal constraint, or a fresh compilation; refusals become 400s naming the path.</summary>
    internal static Grammar Compile(string kind, string text, ConstraintLimits limits, Func<Grammar> compile)
    {
        try
        {
            return GrammarCache.GetOrCompile(kind, text, limits, compile);
        }
        catch (ConstraintException e)
        {
            throw ApiException.Invalid(e.Path, e.Message);
        }
    }

    internal static void CheckSize(JsonElement schema, string path, ApiLimits limits)
    {
        var bytes = Encoding.UTF8.GetByteCount(schema.GetRawText());
        if (bytes > limits.MaxSchemaBytes)
            throw ApiException.Invalid(path, $"{path} must be at most {limits.MaxSchemaBytes} bytes; got {bytes}.", "string_above_max_length");
    }

    private static JsonElement ParseSchemaText(string text, string path, ApiLimits limits)
    {
        if (Encoding.UTF8.GetByteCount(text) > limits.MaxSchemaBytes)
            throw ApiException.Invalid(path, $"{path} must be at most {limits.MaxSchemaBytes} bytes; got {Encoding.UTF8.GetByteCount(text)}.", "string_above_max_length");
        try
        {
            using var doc = JsonDocument.Parse(text, new JsonDocumentOptions { MaxDepth = 2 * limits.MaxSchemaDepth + 2 });
            return doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw ApiException.Invalid(path, $"{path} is a string that is not a JSON schema: {e.Message}");
        }
    }
}
