using System.Text.Json;
using Bulwark.Engine.Templates.Jinja;

namespace Bulwark.Engine.Templates;

/// <summary>
/// A parsed chat template: a sandboxed interpreter for the Jinja2 subset that model chat
/// templates use, rendering as Hugging Face transformers' <c>apply_chat_template</c> does
/// (trim_blocks, lstrip_blocks, loop controls, json.dumps-style <c>tojson</c>,
/// <c>raise_exception</c>, <c>strftime_now</c>). Parse once per model; render per request.
/// Rendering is thread-safe: each call has its own state.
/// </summary>
public sealed class ChatTemplate
{
    private readonly List<Statement> _body;
    private readonly TimeProvider _clock;

    private ChatTemplate(string source, List<Statement> body, TemplateLimits limits, TimeProvider clock)
    {
        Source = source;
        _body = body;
        Limits = limits;
        _clock = clock;
    }

    public TemplateLimits Limits { get; }

    /// <summary>The template's text (what tool-call format detection reads: <see cref="Tools.ToolCallFormats.Detect"/>).</summary>
    public string Source { get; }

    /// <summary>Parses <paramref name="source"/>; throws <see cref="TemplateException"/> if it is not valid in the supported subset.</summary>
    /// <param name="clock">The clock <c>strftime_now</c> reads (local time); the system clock by default.</param>
    public static ChatTemplate Parse(string source, TemplateLimits? limits = null, TimeProvider? clock = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        limits ??= TemplateLimits.Default;
        limits.Validate();
        if (source.Length > limits.MaxSourceLength)
            throw TemplateException.Limit($"template source is {source.Length} characters; the limit is {limits.MaxSourceLength}");
        var body = Guard(() => TemplateParser.Parse(source, limits));
        return new ChatTemplate(source, body, limits, clock ?? TimeProvider.System);
    }

    /// <summary>
    /// Renders a chat the way transformers does: <c>messages</c>, <c>tools</c> (None when absent),
    /// <c>documents</c> (None), <c>add_generation_prompt</c>, then <paramref name="variables"/>
    /// (special tokens such as <c>bos_token</c>, switches such as <c>enable_thinking</c>).
    /// </summary>
    public string RenderChat(JsonElement messages, JsonElement? tools, bool addGenerationPrompt,
        IReadOnlyDictionary<string, object?>? variables = null)
    {
        var all = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = messages,
            ["tools"] = tools is { ValueKind: not JsonValueKind.Null and not JsonValueKind.Undefined } t ? t : null,
            ["documents"] = null,
            ["add_generation_prompt"] = addGenerationPrompt,
        };
        foreach (var (name, value) in variables ?? new Dictionary<string, object?>())
            all[name] = value;
        return Render(all);
    }

    /// <summary>
    /// Renders with exactly these variables. Values may be JSON elements or plain .NET values
    /// (see <see cref="TemplateValues.FromClr"/>). Any template error or limit becomes a
    /// <see cref="TemplateException"/> whose message is safe to show the client.
    /// </summary>
    public string Render(IReadOnlyDictionary<string, object?> variables)
    {
        ArgumentNullException.ThrowIfNull(variables);
        return Guard(() =>
        {
            var renderer = new Renderer(Limits, _clock);
            var scope = new Scope(null);
            Globals.AddTo(scope);
            foreach (var (name, value) in variables)
                scope.Set(name, TemplateValues.FromClr(value));
            Statement.ExecuteAll(_body, renderer, new Scope(scope));
            return renderer.Result;
        });
    }

    // Everything that goes wrong inside the interpreter leaves as a TemplateException.
    private static T Guard<T>(Func<T> action)
    {
        try
        {
            return action();
        }
        catch (InsufficientExecutionStackException)
        {
            throw TemplateException.Limit("template recursion is too deep for the stack");
        }
        catch (OverflowException)
        {
            throw TemplateException.Limit("a number in the template is too large");
        }
        catch (OutOfMemoryException)
        {
            throw TemplateException.Limit("template needed more memory than is available");
        }
    }
}
