using System.Text;

namespace Bulwark.Server.Tests.Guardrails;

/// <summary>
/// Generates credentials in the issuers' published shapes (random bodies from a seeded RNG, so
/// every run sees the same corpus) and look-alikes that must pass untouched.
/// </summary>
internal sealed class SyntheticSecrets(int seed)
{
    private const string Upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    private const string Lower = "abcdefghijklmnopqrstuvwxyz";
    private const string Digits = "0123456789";
    private const string Alnum = Upper + Lower + Digits;
    private const string Base64 = Alnum + "+/";
    private const string UrlSafe = Alnum + "-_";
    private const string Hex = "0123456789abcdef";

    private readonly Random _random = new(seed);

    /// <summary>(rule id, text to embed, the secret part that must disappear).</summary>
    public IEnumerable<(string Rule, string Text, string Secret)> OneOfEachRule()
    {
        var akia = "AKIA" + Pick(Upper + "234567", 16);
        yield return ("aws-access-key-id", akia, akia);
        var awsSecret = Pick(Base64, 40);
        yield return ("aws-secret-access-key", $"aws_secret_access_key = {awsSecret}", awsSecret);
        var gcp = "AIza" + Pick(UrlSafe, 35);
        yield return ("gcp-api-key", gcp, gcp);
        var ghp = "ghp_" + Pick(Alnum, 36);
        yield return ("github-token", ghp, ghp);
        var pat = "github_pat_" + Pick(Alnum, 22) + "_" + Pick(Alnum, 59);
        yield return ("github-pat", pat, pat);
        var glpat = "glpat-" + Pick(UrlSafe, 20);
        yield return ("gitlab-token", glpat, glpat);
        var xoxb = $"xoxb-{Pick(Digits, 12)}-{Pick(Digits, 13)}-{Pick(Alnum, 24)}";
        yield return ("slack-token", xoxb, xoxb);
        var hook = $"hooks.slack.com/services/T{Pick(Upper + Digits, 8)}/B{Pick(Upper + Digits, 10)}/{Pick(Alnum, 24)}";
        yield return ("slack-webhook", "https://" + hook, hook);
        var stripe = "sk_live_" + Pick(Alnum, 24 + _random.Next(75));
        yield return ("stripe-key", stripe, stripe);
        var anthropic = "sk-ant-api03-" + Pick(UrlSafe, 93) + "AA";
        yield return ("anthropic-key", anthropic, anthropic);
        var openai = "sk-proj-" + Pick(UrlSafe, 156);
        yield return ("openai-key", openai, openai);
        var legacy = "sk-" + Pick(Alnum, 20) + "T3BlbkFJ" + Pick(Alnum, 20);
        yield return ("openai-key", legacy, legacy);
        var hf = "hf_" + Pick(Alnum, 34);
        yield return ("huggingface-token", hf, hf);
        var jwt = Jwt();
        yield return ("jwt", jwt, jwt);
        var dbPassword = Pick(Alnum + "!#%^&*-_", 16);
        yield return ("connection-string-password", $"postgres://app_user:{dbPassword}@db.internal:5432/orders", dbPassword);
        var password = Pick(Alnum, 1) + Pick(Alnum + "!#%^&*-_", 11);
        yield return ("password-assignment", $"password: {password}", password);
        var apiKey = Pick(Alnum, 32);
        yield return ("generic-secret", $"api_key = {apiKey}", apiKey);
        var body = PemBody();
        yield return ("private-key", $"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----", body);
    }

    /// <summary>Secrets embedded in prose, code and JSON.</summary>
    public IEnumerable<(string Rule, string Text, string Secret, string Context)> Embedded()
    {
        foreach (var (rule, text, secret) in OneOfEachRule())
        {
            yield return (rule, $"Sure! Use {text} for the staging account, and rotate it next week.", secret, "prose");
            yield return (rule, $"def connect():\n    cfg = load()\n    cfg.extra = \"\"\"{text}\"\"\"\n    return cfg\n", secret, "code");
            yield return (rule, $"{{\"service\": \"billing\", \"note\": \"{text.Replace("\n", "\\n")}\", \"retries\": 3}}",
                secret.Replace("\n", "\\n"), "json");
        }
    }

    /// <summary>Strings that look random or secret-ish but are not credentials.</summary>
    public IEnumerable<string> LookAlikes(int count)
    {
        for (var i = 0; i < count; i++)
        {
            yield return (i % 10) switch
            {
                0 => $"The request id was {Uuid()} in the log.",
                1 => $"Fixed in commit {Pick(Hex, 40)} (see the changelog).",
                2 => $"sha256: {Pick(Hex, 64)}",
                3 => $"<img src=\"data:image/png;base64,iVBORw0KGgo{Pick(Base64, 120 + _random.Next(400))}==\">",
                4 => $"md5 {Pick(Hex, 32)} and build {Pick(Digits, 10)}",
                5 => $"Reset your password from the settings page; a token expires after {Pick(Digits, 2)} minutes.",
                6 => $"const tokenCount = {Pick(Digits, 7)}; // tokens per request",
                7 => $"Our task-force on risk-management met; ask-me-anything at {Pick(Digits, 2)}:00.",
                8 => $"{{\"id\": \"{Pick(UrlSafe, 22)}\", \"etag\": \"{Pick(Hex, 32)}\"}}",
                _ => $"Secret Santa is on Friday; password managers are great; the api_key field is documented in docs/{Pick(Lower, 8)}.md",
            };
        }
    }

    private Guid Uuid()
    {
        var bytes = new byte[16];
        _random.NextBytes(bytes);
        return new Guid(bytes);
    }

    private string Jwt()
    {
        static string B64Url(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var header = B64Url("{\"alg\":\"HS256\",\"typ\":\"JWT\"}");
        var payload = B64Url($"{{\"sub\":\"{Pick(Digits, 10)}\",\"name\":\"{Pick(Lower, 8)}\",\"iat\":{Pick(Digits, 10)}}}");
        return $"{header}.{payload}.{Pick(UrlSafe, 43)}";
    }

    private string PemBody()
    {
        var lines = new List<string>();
        for (var i = 0; i < 25; i++) lines.Add(Pick(Base64, 64));
        lines.Add(Pick(Base64, 20) + "==");
        return string.Join('\n', lines);
    }

    private string Pick(string alphabet, int length)
    {
        var chars = new char[length];
        for (var i = 0; i < length; i++) chars[i] = alphabet[_random.Next(alphabet.Length)];
        return new string(chars);
    }
}
