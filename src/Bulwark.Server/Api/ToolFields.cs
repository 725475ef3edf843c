using System.Text;
using System.Text.Json;
using Bulwark.Engine.Serving.Constraints;
using Bulwark.Engine.Tools;
using Bulwark.Server.Backends;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Api;

/// <summary>
/// Stage 4 for tool calling: OpenAI's <c>tools</c> (functions only), <c>tool_choice</c> and
/// <c>parallel_tool_calls</c>. Every function's <c>parameters</c> is compiled by the constrained-decoding
/// compiler, so a keyword it cannot enforce is a 400 naming its path, whatever the tool choice.
/// <c>required</c> or a named function on a model of the embedded engine becomes the request's constraint:
/// the model's tool-call format around arguments valid against the schema.
/// </summary>
public static class ToolFields
{
    public static ToolRequest? Read(JsonFields f, ModelCard model, ApiLimits limits, OutputConstraint? constraint, out OutputConstraint? enforced)
    {
        enforced = null;
        if (f.Get("functions") is not null)
            throw ApiException.Unsupported("functions", "functions (the deprecated form of tools) is not supported; send tools: [{\"type\": \"function\", \"function\": {...}}].");
        var array = f.Array("tools", 0, limits.MaxTools);
        var choiceValue = f.Get("tool_choice");
        var parallel = f.Boolean("parallel_tool_calls") ?? true;
        if (array is not { } tools || tools.GetArrayLength() == 0)
        {
            if (choiceValue is { ValueKind: not JsonValueKind.String } || choiceValue?.GetString() == "required")
                throw ApiException.Invalid("tool_choice", "tool_choice other than 'auto' or 'none' needs tools.");
            Choice(choiceValue, []); // still checks the value
            return null;
        }
        var bytes = Encoding.UTF8.GetByteCount(tools.GetRawText());
        if (bytes > limits.MaxToolsBytes)
            throw ApiException.Invalid("tools", $"tools must be at most {limits.MaxToolsBytes} bytes of JSON; got {bytes}.", "string_above_max_length");

        var functions = new List<ToolFunction>(tools.GetArrayLength());
        var i = 0;
        foreach (var item in tools.EnumerateArray())
        {
            var tool = new JsonFields(item, $"tools[{i}]");
            var type = tool.RequiredString("type", 32);
            if (type != "function") throw ApiException.Invalid(tool.PathOf("type"), $"{tool.PathOf("type")} must be 'function'; got '{type}'.");
            var function = tool.Object("function") ?? throw ApiException.Invalid(tool.PathOf("function"), $"{tool.PathOf("function")} is required.", "missing_required_parameter");
            var name = Name(function, limits);
            if (functions.Exists(x => x.Name == name))
                throw ApiException.Invalid(function.PathOf("name"), $"{function.PathOf("name")} '{name}' is declared twice; function names must be unique.");
            function.String("description", limits.MaxToolsBytes);
            function.Boolean("strict"); // both values are enforced, as for response_format
            JsonElement? parameters = null;
            if (function.Get("parameters") is { } schema)
            {
                var path = function.PathOf("parameters");
                if (schema.ValueKind != JsonValueKind.Object) throw ApiException.WrongType(path, "an object (a JSON Schema)", JsonFields.Kind(schema));
                ConstraintFields.CheckSize(schema, path, limits);
                ConstraintFields.Compile("json_schema", schema.GetRawText(), limits.Constraints, () => GrammarCompiler.JsonSchema(schema, limits.Constraints, path));
                parameters = schema.Clone();
            }
            functions.Add(new ToolFunction(name, parameters));
            i++;
        }

        var (choice, named) = Choice(choiceValue, functions);
        var request = new ToolRequest(functions, tools.Clone(), choice, named, parallel)
        {
            Parse = choice == ToolChoice.None ? ToolCallFormat.None : model.ToolFormat,
        };
        if (choice is ToolChoice.Required or ToolChoice.Function && model.Pool is null)
            enforced = Enforce(request, model, limits, constraint);
        return request;
    }

    /// <summary>The grammar of a call in the model's format, shared between requests that repeat the same tools and choice.</summary>
    private static OutputConstraint Enforce(ToolRequest request, ModelCard model, ApiLimits limits, OutputConstraint? constraint)
    {
        if (constraint is not null)
            throw ApiException.Invalid("tool_choice", $"tool_choice '{ChoiceName(request)}' and {constraint.Field} cannot both be enforced; send one of them.");
        if (model.ToolFormat == ToolCallFormat.None)
            throw ApiException.Unsupported("tool_choice",
                $"tool_choice '{ChoiceName(request)}' needs the model's tool-call format, and the chat template of '{model.Id}' shows none; " +
                "an operator can set it with Bulwark:Serve:ToolCallFormats (hermes, llama3, mistral).");
        var functions = request.Choice == ToolChoice.Function ? [.. request.Functions.Where(f => f.Name == request.Function)] : request.Functions;
        var key = $"{ToolCallFormats.Name(model.ToolFormat)}\0{request.Parallel}\0{request.Function}\0{request.Json.GetRawText()}";
        var grammar = ConstraintFields.Compile("tool_call", key, limits.Constraints,
            () => ToolCallGrammar.Compile(model.ToolFormat, functions, request.Parallel && request.Choice == ToolChoice.Required, limits.Constraints));
        return new OutputConstraint(ToolRequest.EnforcedBy, grammar);
    }

    private static string ChoiceName(ToolRequest r) => r.Choice == ToolChoice.Function ? r.Function! : "required";

    private static string Name(JsonFields function, ApiLimits limits)
    {
        var path = function.PathOf("name");
        var name = function.RequiredString("name", limits.MaxToolNameLength);
        if (name.Length == 0 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))
            throw ApiException.Invalid(path, $"{path} must be 1 to {limits.MaxToolNameLength} characters of a-z, A-Z, 0-9, _ and -; got '{name}'.");
        return name;
    }

    private static (ToolChoice Choice, string? Function) Choice(JsonElement? value, List<ToolFunction> functions)
    {
        switch (value)
        {
            case null:
                return (ToolChoice.Auto, null);
            case { ValueKind: JsonValueKind.String } s:
                return s.GetString() switch
                {
                    "auto" => (ToolChoice.Auto, null),
                    "none" => (ToolChoice.None, null),
                    "required" => (ToolChoice.Required, null),
                    var other => throw ApiException.Invalid("tool_choice", $"tool_choice must be 'auto', 'none', 'required' or {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}; got '{Cut(other!)}'."),
                };
            case { } o:
                var fields = new JsonFields(o, "tool_choice");
                var type = fields.RequiredString("type", 32);
                if (type != "function") throw ApiException.Invalid("tool_choice.type", $"tool_choice.type must be 'function'; got '{type}'.");
                var function = fields.Object("function") ?? throw ApiException.Invalid("tool_choice.function", "tool_choice.function is required.", "missing_required_parameter");
                var name = function.RequiredString("name", 1024);
                if (!functions.Exists(f => f.Name == name))
                    throw ApiException.Invalid("tool_choice.function.name", $"tool_choice.function.name '{Cut(name)}' is not one of the functions in tools.");
                return (ToolChoice.Function, name);
        }
    }

    private static string Cut(string s) => s.Length <= 64 ? s : s[..64] + "...";
}
