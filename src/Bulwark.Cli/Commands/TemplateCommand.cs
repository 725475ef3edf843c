using System.CommandLine;
using System.Text.Json;
using Bulwark.Engine.Templates;

namespace Bulwark.Cli.Commands;

/// <summary>
/// <c>bulwark template</c>: renders a chat template exactly as a request would, and prints the
/// rendering and nothing else, so it can be diffed against transformers' apply_chat_template.
/// </summary>
internal static class TemplateCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "A .gguf file (tokenizer.chat_template) or a Hugging Face folder (tokenizer_config.json or chat_template.jinja)." };
        var template = new Option<string?>("--template") { Description = "A Jinja template file to render instead of a model's." };
        var messages = new Option<string>("--messages") { Description = "A JSON file holding the messages array.", Required = true };
        var tools = new Option<string?>("--tools") { Description = "A JSON file holding the tools array." };
        var generationPrompt = new Option<bool>("--add-generation-prompt") { Description = "End with the assistant's turn header, as for a request." };
        var vars = new Option<string[]>("--var") { Description = "NAME=STRING: a string variable such as bos_token (repeatable; overrides the model's).", Arity = ArgumentArity.ZeroOrMore };
        var jsonVars = new Option<string[]>("--var-json") { Description = "NAME=JSON: a typed variable such as enable_thinking=false (repeatable).", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("template", "Render a chat template for a conversation and print exactly the rendering.")
        {
            model, template, messages, tools, generationPrompt, vars, jsonVars,
        };
        command.SetAction(result => CommandFailure.Run(result, () =>
        {
            var modelPath = result.GetValue(model);
            var templatePath = result.GetValue(template);
            if ((modelPath is null) == (templatePath is null))
                return CommandFailure.Usage(result, "give exactly one of --model and --template");

            var source = modelPath is not null ? ChatTemplateSource.FromModel(modelPath) : ChatTemplateSource.FromFile(templatePath!);
            var variables = new Dictionary<string, object?>(StringComparer.Ordinal);
            foreach (var (name, value) in source.SpecialTokens) variables[name] = value;
            foreach (var assignment in result.GetValue(vars) ?? [])
            {
                var (name, value) = Split(assignment, "--var");
                variables[name] = value;
            }
            foreach (var assignment in result.GetValue(jsonVars) ?? [])
            {
                var (name, value) = Split(assignment, "--var-json");
                variables[name] = ParseJson(value, $"--var-json {name}");
            }

            using var messagesJson = ReadJson(result.GetRequiredValue(messages), "--messages");
            var toolsPath = result.GetValue(tools);
            using var toolsJson = toolsPath is null ? null : ReadJson(toolsPath, "--tools");
            var rendering = ChatTemplate.Parse(source.Source).RenderChat(
                messagesJson.RootElement, toolsJson?.RootElement, result.GetValue(generationPrompt), variables);
            result.InvocationConfiguration.Output.Write(rendering);
            return 0;
        }));
        return command;
    }

    private static (string Name, string Value) Split(string assignment, string option)
    {
        var equals = assignment.IndexOf('=');
        if (equals <= 0) throw new ArgumentException($"{option} must be NAME=VALUE; got \"{assignment}\"");
        return (assignment[..equals], assignment[(equals + 1)..]);
    }

    private static object? ParseJson(string json, string what)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
            return document.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"{what} is not valid JSON: {e.Message}", e);
        }
    }

    private static JsonDocument ReadJson(string path, string option)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{option}: file not found: {path}", path);
        try
        {
            return JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"{option}: {path} is not valid JSON: {e.Message}", e);
        }
    }
}
