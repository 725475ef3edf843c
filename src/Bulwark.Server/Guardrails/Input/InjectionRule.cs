using System.Text.RegularExpressions;

namespace Bulwark.Server.Guardrails.Input;

/// <summary>
/// One named pattern of the injection scanner, matched against <see cref="ScanText.Normalized"/>
/// (lower case, invisible characters dropped, whitespace collapsed). <see cref="Floor"/> is the
/// least decision a hit forces whatever the model's score: structural attacks (fake chat-format
/// delimiters, hidden or encoded instructions) have no benign reading and are decisive; wording
/// rules ("ignore previous instructions") are evidence the model weighs with everything else.
/// </summary>
public sealed class InjectionRule(string id, string description, GuardDecision floor, params string[] patterns)
{
    public string Id { get; } = id;

    public string Description { get; } = description;

    public GuardDecision Floor { get; } = floor;

    /// <summary>Empty for the rules computed from the text's structure rather than matched (encodings, invisible text); else the rule hits when any matches.</summary>
    /// <remarks>
    /// Patterns are written with single spaces; a space also matches the line feed a folded line
    /// break leaves. The engine is the non-backtracking one: time linear in the input, whatever a
    /// user sends (no ReDoS), so no match timeout can fire under load. A rule may need several
    /// patterns because that engine caps the size of one pattern's automaton (bounded repeats
    /// such as <c>.{0,60}</c> inside an alternation exceed it).
    /// </remarks>
    public IReadOnlyList<Regex> Patterns { get; } = patterns.Select(pattern =>
        new Regex(pattern.Replace(" ", "[ \n]"), RegexOptions.CultureInvariant | RegexOptions.NonBacktracking | RegexOptions.ExplicitCapture | RegexOptions.Singleline,
            Regex.InfiniteMatchTimeout)).ToArray();

    /// <summary>Whether the rule is matched against the text (false for the structural rules).</summary>
    public bool HasPattern => Patterns.Count > 0;

    public bool Matches(string normalized)
    {
        foreach (var pattern in Patterns)
        {
            if (pattern.IsMatch(normalized)) return true;
        }
        return false;
    }
}
