using System.Text;
using Bulwark.Server.Guardrails.Output;

namespace Bulwark.Server.Tests.Guardrails;

public sealed class StreamingRedactorTests
{
    private static readonly SyntheticSecrets Corpus = new(seed: 20261125);
    private static readonly (string Rule, string Text, string Secret, string Context)[] Embedded = Corpus.Embedded().ToArray();

    public static TheoryData<int> EmbeddedCases()
    {
        var data = new TheoryData<int>();
        for (var i = 0; i < Embedded.Length; i++) data.Add(i);
        return data;
    }

    [Fact]
    public void EveryRuleHasAGeneratedSecret()
    {
        var covered = Embedded.Select(e => e.Rule).ToHashSet();
        var rules = SecretRules.Default.Select(r => r.Id).ToHashSet();
        Assert.Equal(rules.Order(), covered.Order());
    }

    [Theory]
    [MemberData(nameof(EmbeddedCases))]
    public void SecretIsRedactedWhenTheTextArrivesWhole(int index)
    {
        var (rule, text, secret, context) = Embedded[index];
        var redacted = StreamingRedactor.Redact(text);
        AssertSecretGone(redacted, secret);
        Assert.Contains("[REDACTED:", redacted);
        if (context == "prose") Assert.Contains($"[REDACTED:{rule}]", redacted);
    }

    [Theory]
    [MemberData(nameof(EmbeddedCases))]
    public void SecretSplitAtEveryBoundaryIsRedactedExactlyAsWhole(int index)
    {
        var (_, text, secret, _) = Embedded[index];
        var whole = StreamingRedactor.Redact(text);
        for (var cut = 1; cut < text.Length; cut++)
        {
            var streamed = Stream(text[..cut], text[cut..]);
            if (streamed != whole) Assert.Fail($"cut at {cut}: streamed output differs\n{streamed}\nvs\n{whole}");
        }
        AssertSecretGone(whole, secret);
    }

    [Theory]
    [MemberData(nameof(EmbeddedCases))]
    public void SecretStreamedOneCharacterAtATimeOrInRandomPiecesIsRedactedExactlyAsWhole(int index)
    {
        var (_, text, _, _) = Embedded[index];
        var whole = StreamingRedactor.Redact(text);
        Assert.Equal(whole, Stream(text.Select(c => c.ToString()).ToArray()));
        var random = new Random(index);
        for (var trial = 0; trial < 20; trial++)
        {
            var pieces = new List<string>();
            for (var at = 0; at < text.Length;)
            {
                var length = Math.Min(text.Length - at, 1 + random.Next(12));
                pieces.Add(text.Substring(at, length));
                at += length;
            }
            Assert.Equal(whole, Stream(pieces.ToArray()));
        }
    }

    [Fact]
    public void AtMostOnePercentOfLookAlikesAreTouched()
    {
        var lookAlikes = new SyntheticSecrets(seed: 7).LookAlikes(2000).ToArray();
        var touched = lookAlikes.Where(text => StreamingRedactor.Redact(text) != text).ToArray();
        Assert.True(touched.Length <= lookAlikes.Length / 100,
            $"{touched.Length} of {lookAlikes.Length} look-alikes touched, e.g. {touched.FirstOrDefault()}");
    }

    [Fact]
    public void TextWithoutAnchorsIsReleasedImmediately()
    {
        var redactor = new StreamingRedactor();
        Assert.Equal("Hello, world. ", redactor.Push("Hello, world. "));
        Assert.Equal(0, redactor.Pending);
    }

    [Fact]
    public void ThePossibleStartOfAnAnchorIsHeldUntilItIsDecided()
    {
        var redactor = new StreamingRedactor();
        Assert.Equal("key ", redactor.Push("key gh"));
        Assert.Equal(2, redactor.Pending);
        Assert.Equal("ghost ", redactor.Push("ost "));
    }

    [Fact]
    public void PrivateKeyBlockIsSwallowedUpToItsEndLineAndTextAfterItFlows()
    {
        var text = "key:\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\nAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----\nDone.";
        Assert.Equal("key:\n[REDACTED:private-key]\nDone.", StreamingRedactor.Redact(text));
    }

    [Fact]
    public void UnterminatedPrivateKeyBlockSwallowsTheRestOfTheStream()
    {
        var redactor = new StreamingRedactor();
        var emitted = redactor.Push("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC") + redactor.Flush();
        Assert.Equal("[REDACTED:private-key]", emitted);
    }

    [Fact]
    public void BlockModeStopsBeforeTheSecretAndNamesTheRule()
    {
        var redactor = new StreamingRedactor(OutputGuardMode.Block);
        var token = "ghp_" + new string('a', 18) + new string('7', 18);
        var emitted = redactor.Push("Your token is ") + redactor.Push(token[..10]) + redactor.Push(token[10..] + " and more") + redactor.Flush();
        Assert.Equal("Your token is ", emitted);
        Assert.True(redactor.IsBlocked);
        Assert.Equal("github-token", redactor.BlockedBy);
        Assert.Equal("", redactor.Push("later text"));
    }

    [Theory]
    [InlineData("ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3hJ5", true)] // 36 chars after the prefix
    [InlineData("ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3hJ", false)] // 35: one below the format
    [InlineData("ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3hJ5x", false)] // 37: part of a longer word
    public void GitHubTokenLengthIsExact(string candidate, bool redacted) =>
        Assert.Equal(redacted, StreamingRedactor.Redact($"t {candidate} t") != $"t {candidate} t");

    [Theory]
    [InlineData("password = hunter", true)] // 6 characters: the minimum
    [InlineData("password = hunte", false)] // 5: below it
    [InlineData("password = hunter2", true)]
    [InlineData("password = ${DB_PASSWORD}", false)]
    [InlineData("password = <your password>", false)]
    public void PasswordAssignmentsSkipPlaceholders(string text, bool redacted) =>
        Assert.Equal(redacted, StreamingRedactor.Redact(text) != text);

    [Theory]
    [InlineData("api_key = abcdefghijklmnop", false)] // no digit: a word, not a token
    [InlineData("api_key = a1b2c3d4e5f6g7h", false)] // 15 characters: below the minimum of 16
    [InlineData("api_key = a1b2c3d4e5f6g7h8", true)] // 16 characters
    public void GenericSecretsNeedLengthAndRandomness(string text, bool redacted) =>
        Assert.Equal(redacted, StreamingRedactor.Redact(text) != text);

    private static string Stream(params string[] pieces)
    {
        var redactor = new StreamingRedactor();
        var output = new StringBuilder();
        foreach (var piece in pieces) redactor.Push(piece, output);
        redactor.Flush(output);
        return output.ToString();
    }

    private static void AssertSecretGone(string redacted, string secret)
    {
        // No 12-character window of the secret may survive (a partial leak is still a leak).
        for (var i = 0; i + 12 <= secret.Length; i++)
        {
            if (redacted.Contains(secret.AsSpan(i, 12), StringComparison.Ordinal))
                Assert.Fail($"secret fragment '{secret.Substring(i, 12)}' survived in: {redacted}");
        }
    }
}
