using System.Text.RegularExpressions;

namespace Bulwark.Server.Guardrails.GuardModels;

/// <summary>
/// A guard model family's prompt and verdict format: how a conversation (a user's prompt and,
/// for output moderation, the assistant's answer) is put to the model, the regular expression its
/// answer must match — the grammar the embedded engine decodes under, so even a random model can
/// only answer in format — and the strict parser of that answer.
/// </summary>
public abstract class GuardModelFormat
{
    /// <summary>The formats by their configuration name: <c>llama-guard-3</c>, <c>qwen3guard</c>, <c>shieldgemma</c>.</summary>
    public static IReadOnlyDictionary<string, GuardModelFormat> ByName { get; } = new Dictionary<string, GuardModelFormat>(StringComparer.OrdinalIgnoreCase)
    {
        [LlamaGuard3Format.Instance.Name] = LlamaGuard3Format.Instance,
        [Qwen3GuardFormat.Instance.Name] = Qwen3GuardFormat.Instance,
        [ShieldGemmaFormat.Instance.Name] = ShieldGemmaFormat.Instance,
    };

    /// <summary>The format named <paramref name="name"/>; the error lists the names there are.</summary>
    public static GuardModelFormat Parse(string? name, string setting) =>
        name is not null && ByName.TryGetValue(name, out var format)
            ? format
            : throw new FormatException($"{setting} must be one of {string.Join(", ", ByName.Keys)}; got '{name}'");

    public abstract string Name { get; }

    /// <summary>Every category this format can name, in its own spelling.</summary>
    public abstract IReadOnlyList<string> Categories { get; }

    /// <summary>The prompt asking about <paramref name="user"/>'s message, or, with <paramref name="assistant"/>, about that answer to it.</summary>
    public abstract GuardPrompt Render(string user, string? assistant);

    /// <summary>The pattern a complete answer matches (output moderation's answer may differ from input moderation's).</summary>
    public abstract string Pattern(bool response);

    /// <summary>
    /// The verdict in <paramref name="answer"/>, which must match <see cref="Pattern"/> exactly (trailing
    /// white space aside: an upstream model may end its turn with a line break).
    /// </summary>
    /// <exception cref="GuardModelException">The answer is not in the format.</exception>
    public GuardModelVerdict Parse(string answer, bool response)
    {
        var trimmed = answer.TrimEnd();
        if (!Regex.IsMatch(trimmed, $"^(?:{Pattern(response)})$", RegexOptions.CultureInvariant | RegexOptions.NonBacktracking))
            throw new GuardModelException($"the guard model's answer is not in the {Name} format ({trimmed.Length} characters)");
        return Read(trimmed, response);
    }

    /// <summary>The verdict of an answer already known to match the pattern.</summary>
    protected abstract GuardModelVerdict Read(string answer, bool response);

    /// <summary><paramref name="items"/> as a regex alternation, each escaped for both .NET and the engine's regex dialect (which refuses <c>\ </c>).</summary>
    protected static string AnyOf(IEnumerable<string> items) => "(?:" + string.Join('|', items.Select(Escape)) + ")";

    private static string Escape(string literal) =>
        string.Concat(literal.Select(c => @"\*+?|{}[]()^$.#".Contains(c) ? "\\" + c : c.ToString()));
}
