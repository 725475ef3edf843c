namespace Bulwark.Server.Guardrails.Output;

/// <summary>
/// The built-in credential formats. Each pattern starts with <c>\G</c> (it is only tried at an
/// anchor), refuses to start inside a longer token (lookbehind), refuses to end inside one
/// (lookahead), and is bounded; its alphabet lists every character a match can consume, and its
/// maximum length counts the one character the lookahead reads past the match. Formats follow
/// the issuers' documented prefixes (GitHub <c>ghp_</c>, Slack <c>xoxb-</c>, AWS <c>AKIA</c>, ...).
/// </summary>
public static class SecretRules
{
    private const string Upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    private const string Lower = "abcdefghijklmnopqrstuvwxyz";
    private const string Digits = "0123456789";
    private const string Alnum = Upper + Lower + Digits;
    private const string UrlSafe = Alnum + "_-";

    /// <summary>Printable ASCII without space: what passwords in assignments and URLs are made of.</summary>
    private static readonly string Printable = string.Concat(Enumerable.Range(0x21, 0x7E - 0x21 + 1).Select(c => (char)c));

    private const string Separators = "\"' \t:=>";

    public static IReadOnlyList<SecretRule> Default { get; } = Build();

    private static SecretRule[] Build() =>
    [
        // PEM / OpenSSH / PGP: the header is matched, then the block is swallowed to its END line.
        SecretRule.Token("private-key", ["-----BEGIN"],
            @"\G-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----", Upper + Digits + " -", 80, opensBlock: true),
        SecretRule.Token("aws-access-key-id", ["AKIA", "ASIA", "ABIA", "ACCA"],
            @"\G(?<![A-Za-z0-9/+])(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}(?![A-Za-z0-9/+])", Upper + Digits, 21),
        SecretRule.Assignment("aws-secret-access-key", ["aws_secret", "aws-secret", "awssecret"],
            @"\G(?i:aws[_\-]?secret(?:[_\-]?access)?[_\-]?key)[""']?[ \t]{0,3}(?::|=|:=|=>)[ \t]{0,3}[""']?",
            Alnum + "_-" + Separators, 40,
            @"\G[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])", Alnum + "/+", 41, minEntropy: 3.5),
        SecretRule.Token("gcp-api-key", ["AIza"],
            @"\G(?<![A-Za-z0-9_\-])AIza[A-Za-z0-9_\-]{35}(?![A-Za-z0-9_\-])", UrlSafe, 40),
        SecretRule.Token("github-token", ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
            @"\G(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{36}(?![A-Za-z0-9_])", Alnum + "_", 41),
        SecretRule.Token("github-pat", ["github_pat_"],
            @"\G(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{82}(?![A-Za-z0-9_])", Alnum + "_", 94),
        SecretRule.Token("gitlab-token", ["glpat-"],
            @"\G(?<![A-Za-z0-9_\-])glpat-[A-Za-z0-9_\-]{20,64}(?![A-Za-z0-9_\-])", UrlSafe, 71, minEntropy: 3.0),
        SecretRule.Token("slack-token", ["xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", "xoxe-", "xoxo-"],
            @"\G(?<![A-Za-z0-9])xox[abposre]-[A-Za-z0-9\-]{10,250}(?![A-Za-z0-9\-])", Alnum + "-", 256, minEntropy: 3.0),
        SecretRule.Token("slack-webhook", ["hooks.slack.com/services/"],
            @"\Ghooks\.slack\.com/services/T[A-Z0-9]{6,12}/B[A-Z0-9]{6,12}/[A-Za-z0-9]{20,32}(?![A-Za-z0-9])",
            Alnum + "./", 90),
        SecretRule.Token("stripe-key", ["sk_live_", "sk_test_", "rk_live_", "rk_test_"],
            @"\G(?<![A-Za-z0-9_])[rs]k_(?:live|test)_[A-Za-z0-9]{24,99}(?![A-Za-z0-9_])", Alnum + "_", 109),
        SecretRule.Token("anthropic-key", ["sk-ant-"],
            @"\G(?<![A-Za-z0-9_\-])sk-ant-(?:api|admin)[0-9]{2}-[A-Za-z0-9_\-]{80,120}(?![A-Za-z0-9_\-])", UrlSafe, 140),
        SecretRule.Token("openai-key", ["sk-"],
            @"\G(?<![A-Za-z0-9_\-])sk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{32,200}(?![A-Za-z0-9_\-])",
            UrlSafe, 213, minEntropy: 3.5, letterAndDigit: true),
        SecretRule.Token("huggingface-token", ["hf_"],
            @"\G(?<![A-Za-z0-9_])hf_[A-Za-z0-9]{34,40}(?![A-Za-z0-9_])", Alnum + "_", 44, minEntropy: 3.5),
        SecretRule.Token("jwt", ["eyJ"],
            @"\G(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{8,1000}\.eyJ[A-Za-z0-9_\-]{8,2000}\.[A-Za-z0-9_\-]{16,700}(?![A-Za-z0-9_\-])",
            UrlSafe + ".", 3712),
        // scheme://user:PASSWORD@host — only the password is replaced.
        SecretRule.Assignment("connection-string-password",
            ["postgres://", "postgresql://", "mysql://", "mariadb://", "mongodb://", "mongodb+srv://", "redis://", "rediss://",
             "amqp://", "amqps://", "mssql://", "sqlserver://", "ftp://", "smtp://", "smtps://", "ldap://", "ldaps://"],
            @"\G(?i:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver|ftp|smtps?|ldaps?)://[\x21-\x7E-[:@/'""]]{0,64}:",
            Printable, 82,
            @"\G[\x21-\x7E-[@/'""]]{1,128}(?=@)", Printable, 130),
        SecretRule.Assignment("password-assignment", ["password", "passwd", "pwd"],
            @"\G(?i:password|passwd|pwd)[""']?[ \t]{0,3}(?::|=|:=|=>)[ \t]{0,3}[""']?",
            Upper + Lower + Separators, 20,
            @"\G(?![$<{%*])[\x21-\x7E-['""`,;<>]]{6,128}(?=[ \t\r\n'""`,;<>]|$)", Printable, 130),
        SecretRule.Assignment("generic-secret", ["secret", "api_key", "apikey", "api-key", "token", "private_key"],
            @"\G(?i:secret|api[_\-]?key|token|private_key)[A-Za-z_\-]{0,16}[""']?[ \t]{0,3}(?::|=|:=|=>)[ \t]{0,3}[""']?",
            UrlSafe + Separators, 40,
            @"\G[A-Za-z0-9_\-+/=.~]{16,200}(?![A-Za-z0-9_\-+/=.~])", UrlSafe + "+/=.~", 201, minEntropy: 3.5, letterAndDigit: true),
    ];
}
