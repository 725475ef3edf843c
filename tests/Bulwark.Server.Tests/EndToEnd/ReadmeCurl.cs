using System.Text;
using System.Text.RegularExpressions;

namespace Bulwark.Server.Tests.EndToEnd;

/// <summary>
/// The curl commands of a README code block, turned into HTTP requests the test sends itself:
/// shell words (single and double quotes, <c>$VAR</c> inside double quotes), then curl's
/// <c>URL</c>, <c>-H</c> and <c>-d</c>. Anything else on the line fails the test, so the README
/// cannot drift into commands the test does not check.
/// </summary>
internal static partial class ReadmeCurl
{
    public sealed record Command(string Line, string? AssignsTo, HttpMethod Method, string Url, List<(string Name, string Value)> Headers, string? Body, string? Pipe);

    /// <summary>Every line of a ```bash block under <paramref name="heading"/> that runs curl, in order.</summary>
    public static List<string> Lines(string readme, string heading)
    {
        var section = readme[readme.IndexOf(heading, StringComparison.Ordinal)..];
        var next = section.IndexOf("\n## ", heading.Length, StringComparison.Ordinal);
        if (next > 0) section = section[..next];
        var lines = new List<string>();
        foreach (Match block in BashBlock().Matches(section))
            foreach (var line in block.Groups[1].Value.Split('\n'))
                if (line.Contains("curl ", StringComparison.Ordinal)) lines.Add(line.Trim());
        return lines;
    }

    /// <summary>One curl line, with <paramref name="variables"/> (set by earlier lines) expanded.</summary>
    public static Command Parse(string line, IReadOnlyDictionary<string, string> variables)
    {
        string? assigns = null, pipe = null;
        var text = line;
        if (Assignment().Match(text) is { Success: true } a)
        {
            assigns = a.Groups[1].Value;
            text = a.Groups[2].Value;
            var bar = text.LastIndexOf(" | ", StringComparison.Ordinal);
            if (bar > 0) (text, pipe) = (text[..bar], text[(bar + 3)..]);
        }
        var words = Words(text, variables);
        Assert.Equal("curl", words[0]);
        string? url = null, body = null;
        var headers = new List<(string, string)>();
        for (var i = 1; i < words.Count; i++)
        {
            switch (words[i])
            {
                case "-s" or "-sN" or "-N": break;
                case "-H":
                    var h = words[++i];
                    var colon = h.IndexOf(':');
                    headers.Add((h[..colon].Trim(), h[(colon + 1)..].Trim()));
                    break;
                case "-d": body = words[++i]; break;
                case var w when w.StartsWith("http", StringComparison.Ordinal): url = w; break;
                default: throw new Xunit.Sdk.XunitException($"README curl line uses '{words[i]}', which the test does not understand: {line}");
            }
        }
        Assert.NotNull(url);
        return new Command(line, assigns, body is null ? HttpMethod.Get : HttpMethod.Post, url!, headers, body, pipe);
    }

    /// <summary>Splits a shell line into words: '...' literal, "..." with $VAR expanded, bare words with $VAR expanded.</summary>
    private static List<string> Words(string text, IReadOnlyDictionary<string, string> variables)
    {
        var words = new List<string>();
        var word = new StringBuilder();
        var inWord = false;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c == ' ')
            {
                if (inWord) words.Add(word.ToString());
                word.Clear();
                inWord = false;
                continue;
            }
            inWord = true;
            if (c == '\'')
            {
                var end = text.IndexOf('\'', i + 1);
                word.Append(text, i + 1, end - i - 1);
                i = end;
            }
            else if (c == '"')
            {
                var end = text.IndexOf('"', i + 1);
                word.Append(Expand(text[(i + 1)..end], variables));
                i = end;
            }
            else if (c == '$')
            {
                var name = VariableName().Match(text, i + 1).Value;
                word.Append(variables[name]);
                i += name.Length;
            }
            else word.Append(c);
        }
        if (inWord) words.Add(word.ToString());
        return words;
    }

    private static string Expand(string text, IReadOnlyDictionary<string, string> variables) =>
        VariableReference().Replace(text, m => variables[m.Groups[1].Value]);

    [GeneratedRegex(@"```bash\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex BashBlock();

    [GeneratedRegex(@"^export ([A-Z_]+)=\$\((.*)\)$")]
    private static partial Regex Assignment();

    [GeneratedRegex(@"\G[A-Za-z_][A-Za-z0-9_]*")]
    private static partial Regex VariableName();

    [GeneratedRegex(@"\$([A-Za-z_][A-Za-z0-9_]*)")]
    private static partial Regex VariableReference();
}
