using System.Text.RegularExpressions;

namespace Bulwark.Server.Guardrails.Input;

/// <summary>
/// One named pattern of the injection scanner, matched against <see cref="ScanText.Normalized"/>
/// (lower case, invisible characters dropped, whitespace collapsed). <see cref="Floor"/> is the
/// least decision a hit forces whatever the model's score: structural attacks (fake chat-format
/// delimiters, hidden or encoded instructions) have no benign reading and are decisive; wording
/// rules ("ignore previous instructions") are evidence the model weighs with everything else.
/// </summary>
public sealed class InjectionRule(string id, string description, GuardDecision floor, string? pattern = null)
{
    public string Id { get; } = id;

    public string Description { get; } = description;

    public GuardDecision Floor { get; } = floor;

    /// <summary>Null for the rules computed from the text's structure rather than matched (encodings, invisible text).</summary>
    /// <remarks>
    /// Patterns are written with single spaces; a space also matches the line feed a folded line
    /// break leaves. The engine is the non-backtracking one: time linear in the input, whatever a
    /// user sends (no ReDoS), so no match timeout can fire under load.
    /// </remarks>
    public Regex? Pattern { get; } = pattern is null ? null
        : new Regex(pattern.Replace(" ", "[ \n]"), RegexOptions.CultureInvariant | RegexOptions.NonBacktracking | RegexOptions.ExplicitCapture | RegexOptions.Singleline,
            Regex.InfiniteMatchTimeout);

    public bool Matches(string normalized) => Pattern is not null && Pattern.IsMatch(normalized);
}
