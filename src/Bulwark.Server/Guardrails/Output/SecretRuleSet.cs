using System.Buffers;

namespace Bulwark.Server.Guardrails.Output;

/// <summary>
/// A rule list prepared for scanning: every anchor of every rule in one vectorised search, and
/// the characters an anchor can start with, so the streaming redactor can tell in a few
/// comparisons whether the end of its buffer could be the beginning of a secret. Immutable and
/// shared by every stream.
/// </summary>
public sealed class SecretRuleSet
{
    public SecretRuleSet(IReadOnlyList<SecretRule> rules)
    {
        if (rules.Count == 0) throw new ArgumentException("at least one secret rule is required", nameof(rules));
        Rules = rules;
        AllAnchors = rules.SelectMany(r => r.Anchors).Distinct(StringComparer.OrdinalIgnoreCase).ToArray();
        Anchors = SearchValues.Create(AllAnchors, StringComparison.OrdinalIgnoreCase);
        var firsts = AllAnchors.SelectMany(a => new[] { char.ToLowerInvariant(a[0]), char.ToUpperInvariant(a[0]) });
        AnchorStarts = SearchValues.Create(string.Concat(firsts.Distinct()));
        LongestAnchor = AllAnchors.Max(a => a.Length);
    }

    public static SecretRuleSet Default { get; } = new(SecretRules.Default);

    public IReadOnlyList<SecretRule> Rules { get; }

    public SearchValues<string> Anchors { get; }

    public int LongestAnchor { get; }

    private string[] AllAnchors { get; }

    private SearchValues<char> AnchorStarts { get; }

    /// <summary>
    /// Length of the longest suffix of <paramref name="text"/> that is a proper prefix of an
    /// anchor (ignoring case): text that must be held back because the next piece may complete it.
    /// </summary>
    public int PartialAnchorSuffix(ReadOnlySpan<char> text)
    {
        var from = Math.Max(0, text.Length - (LongestAnchor - 1));
        for (var i = from; i < text.Length; i++)
        {
            if (!AnchorStarts.Contains(text[i])) continue;
            var tail = text[i..];
            foreach (var anchor in AllAnchors)
            {
                if (anchor.Length > tail.Length && anchor.AsSpan().StartsWith(tail, StringComparison.OrdinalIgnoreCase))
                    return tail.Length;
            }
        }
        return 0;
    }
}
