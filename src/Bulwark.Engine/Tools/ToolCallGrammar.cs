using System.Text.Json;
using Bulwark.Engine.Serving.Constraints;

namespace Bulwark.Engine.Tools;

/// <summary>A function the model may call: its name and its parameters' JSON Schema (null: no parameters, an empty object).</summary>
public sealed record ToolFunction(string Name, JsonElement? Parameters);

/// <summary>
/// The grammar of "the model calls a tool" in a model's own format, for <c>tool_choice: required</c> or a named
/// function: the format's marker, then a JSON object whose name is one of the functions and whose arguments are
/// valid against that function's parameters (compiled by <see cref="JsonSchemaCompiler"/> into the same grammar,
/// so each name goes with its own schema). The layout is the one the chat templates show the model:
/// <list type="bullet">
/// <item>Hermes: <c>&lt;tool_call&gt;\n{"name": "f", "arguments": {…}}\n&lt;/tool_call&gt;</c>, calls separated by <c>\n</c>;</item>
/// <item>Llama 3: <c>{"name": "f", "parameters": {…}}</c>, calls separated by <c>; </c>;</item>
/// <item>Mistral: <c>[TOOL_CALLS][{"name": "f", "arguments": {…}}, …]</c>.</item>
/// </list>
/// With <c>parallel</c> false exactly one call; otherwise one or more.
/// </summary>
public static class ToolCallGrammar
{
    /// <param name="path">Where the functions are in the request, for errors: function i's schema is <c>{path}[i].function.parameters</c>.</param>
    public static Grammar Compile(ToolCallFormat format, IReadOnlyList<ToolFunction> functions, bool parallel, ConstraintLimits? limits = null, string path = "tools")
    {
        if (format == ToolCallFormat.None) throw new ArgumentException("a tool-call grammar needs a format", nameof(format));
        if (functions.Count == 0) throw new ArgumentException("at least one function is needed", nameof(functions));
        limits ??= ConstraintLimits.Default;
        var json = new JsonGrammar(new GrammarBuilder(limits.MaxGrammarItems));
        var b = json.Builder;
        var argumentsKey = format == ToolCallFormat.Llama3 ? "parameters" : "arguments";
        var call = b.Rule();
        for (var i = 0; i < functions.Count; i++)
        {
            var f = functions[i];
            var arguments = f.Parameters is { } schema ? JsonSchemaCompiler.Rule(json, schema, limits, $"{path}[{i}].function.parameters") : b.Literal("{}");
            var name = JsonSerializer.Serialize(f.Name);
            b.Alt(call, b.Literal($"{{\"name\": {name}, \"{argumentsKey}\": "), arguments, b.Literal("}"));
        }
        var (open, separator, close) = format switch
        {
            ToolCallFormat.Hermes => ("", "\n", ""),
            ToolCallFormat.Llama3 => ("", "; ", ""),
            _ => ("[TOOL_CALLS][", ", ", "]"),
        };
        if (format == ToolCallFormat.Hermes) call = b.Seq(b.Literal("<tool_call>\n"), call, b.Literal("\n</tool_call>"));
        var calls = parallel ? b.SeparatedList(call, b.Literal(separator), 1, null) : call;
        var start = open.Length > 0 ? b.Seq(b.Literal(open), calls, b.Literal(close)) : calls;
        return b.Build(start, "tool_call");
    }
}
