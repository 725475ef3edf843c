using System.Buffers;
using System.Text.RegularExpressions;

namespace Bulwark.Server.Guardrails.Output;

/// <summary>
/// One credential format. A match can only start where one of <see cref="Anchors"/> occurs (the
/// keyword pre-filter), so ordinary text is never run through the regular expressions and never
/// held back. Every pattern is bounded (<see cref="PrefixMaxLength"/>, <see cref="SecretMaxLength"/>)
/// and built from characters in its alphabet, which is what lets the streaming redactor decide a
/// match from a finite hold-back window: see <see cref="StreamingRedactor"/>.
/// </summary>
public sealed class SecretRule
{
    private SecretRule(string id, string[] anchors, bool ignoreCase, Regex secret, string secretAlphabet, int secretMaxLength)
    {
        Id = id;
        Anchors = anchors;
        AnchorComparison = ignoreCase ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
        Secret = secret;
        SecretAlphabet = SearchValues.Create(secretAlphabet);
        SecretMaxLength = secretMaxLength;
        Replacement = $"[REDACTED:{id}]";
    }

    /// <summary>Rule id used in the replacement <c>[REDACTED:id]</c>, metrics and audit records.</summary>
    public string Id { get; }

    /// <summary>Literal strings at which a match starts (the prefix when there is one, else the secret).</summary>
    public string[] Anchors { get; }

    public StringComparison AnchorComparison { get; }

    /// <summary>Optional key part (<c>password = "</c>) emitted unchanged; the secret follows it.</summary>
    public Regex? Prefix { get; private init; }

    public SearchValues<char>? PrefixAlphabet { get; private init; }

    public int PrefixMaxLength { get; private init; }

    /// <summary>The replaced part; starts with <c>\G</c> so it only matches where it is asked to.</summary>
    public Regex Secret { get; }

    /// <summary>Every character the secret pattern (including its lookarounds' reach) can consume.</summary>
    public SearchValues<char> SecretAlphabet { get; }

    /// <summary>Longest secret match plus one character of lookahead.</summary>
    public int SecretMaxLength { get; }

    /// <summary>Minimum Shannon entropy (bits per character) of the secret; 0 turns the check off.</summary>
    public double MinEntropy { get; private init; }

    /// <summary>The secret must contain both a letter and a digit (random tokens do; words and numbers don't).</summary>
    public bool RequiresLetterAndDigit { get; private init; }

    /// <summary>
    /// The match opens a block (a PEM private key): everything after it up to the closing
    /// <c>-----END ...-----</c> line is swallowed, however long the block is.
    /// </summary>
    public bool OpensBlock { get; private init; }

    public string Replacement { get; }

    public static SecretRule Token(string id, string[] anchors, string pattern, string alphabet, int maxLength,
        double minEntropy = 0, bool letterAndDigit = false, bool ignoreCase = false, bool opensBlock = false) =>
        new(id, anchors, ignoreCase, Compile(pattern), alphabet, maxLength)
        {
            MinEntropy = minEntropy,
            RequiresLetterAndDigit = letterAndDigit,
            OpensBlock = opensBlock,
        };

    public static SecretRule Assignment(string id, string[] anchors, string prefix, string prefixAlphabet, int prefixMaxLength,
        string secret, string secretAlphabet, int secretMaxLength, double minEntropy = 0, bool letterAndDigit = false) =>
        new(id, anchors, ignoreCase: true, Compile(secret), secretAlphabet, secretMaxLength)
        {
            Prefix = Compile(prefix),
            PrefixAlphabet = SearchValues.Create(prefixAlphabet),
            PrefixMaxLength = prefixMaxLength,
            MinEntropy = minEntropy,
            RequiresLetterAndDigit = letterAndDigit,
        };

    /// <summary>The anchor of this rule that starts at <paramref name="at"/>, or 0 when none does.</summary>
    public int AnchorLengthAt(ReadOnlySpan<char> text, int at)
    {
        var rest = text[at..];
        foreach (var anchor in Anchors)
        {
            if (rest.StartsWith(anchor, AnchorComparison)) return anchor.Length;
        }
        return 0;
    }

    /// <summary>Whether a matched secret is random enough to be one (filters words, numbers, placeholders).</summary>
    public bool Accepts(ReadOnlySpan<char> secret)
    {
        if (RequiresLetterAndDigit && (secret.IndexOfAnyInRange('0', '9') < 0 || !ContainsLetter(secret))) return false;
        return MinEntropy <= 0 || ShannonEntropy(secret) >= MinEntropy;
    }

    /// <summary>Bits per character of the empirical character distribution.</summary>
    public static double ShannonEntropy(ReadOnlySpan<char> text)
    {
        if (text.IsEmpty) return 0;
        Span<int> counts = stackalloc int[128];
        var other = 0;
        foreach (var c in text)
        {
            if (c < 128) counts[c]++;
            else other++;
        }
        double entropy = 0, n = text.Length;
        foreach (var count in counts)
        {
            if (count > 0) entropy -= count / n * Math.Log2(count / n);
        }
        if (other > 0) entropy -= other / n * Math.Log2(other / n);
        return entropy;
    }

    private static bool ContainsLetter(ReadOnlySpan<char> text) =>
        text.IndexOfAnyInRange('a', 'z') >= 0 || text.IndexOfAnyInRange('A', 'Z') >= 0;

    private static Regex Compile(string pattern) =>
        new(pattern, RegexOptions.CultureInvariant | RegexOptions.Compiled | RegexOptions.ExplicitCapture, TimeSpan.FromSeconds(1));
}
