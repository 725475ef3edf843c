using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Bulwark.Engine.Evaluation.Safety;

/// <summary>A safety probe set file that cannot be used; the message names the file, the line and what is wrong.</summary>
public sealed class SafetyProbeSetException(string message) : Exception(message);

/// <summary>
/// A safety probe set: JSON Lines, one object per line, <c>{"id", "prompt", "category", "kind"}</c>
/// with <c>kind</c> "harmful" or "benign"; blank lines are skipped. Everything is checked before
/// any probe is used, and every error names the line.
/// </summary>
public sealed class SafetyProbeSet
{
    public const int MaxFileBytes = 1 << 20;
    public const int MaxProbes = 1000;
    public const int MaxPromptChars = 4000;
    public const int MaxNameChars = 64;

    private SafetyProbeSet(string origin, IReadOnlyList<SafetyProbe> probes, string sha256)
    {
        Origin = origin;
        Probes = probes;
        Sha256 = sha256;
    }

    /// <summary>Where the set came from (a path, or "built-in"), as reports name it.</summary>
    public string Origin { get; }

    public IReadOnlyList<SafetyProbe> Probes { get; }

    /// <summary>SHA-256 of the file's bytes (hex), so a stored result names exactly the set it measured.</summary>
    public string Sha256 { get; }

    public int Harmful => Probes.Count(p => p.Kind == ProbeKind.Harmful);

    public int Benign => Probes.Count(p => p.Kind == ProbeKind.Benign);

    /// <summary>Reads and checks a probe file, refusing one over <see cref="MaxFileBytes"/> before reading it.</summary>
    public static SafetyProbeSet Load(string path)
    {
        var file = new FileInfo(path);
        if (!file.Exists) throw new SafetyProbeSetException($"{path}: no such probe file");
        if (file.Length > MaxFileBytes) throw new SafetyProbeSetException($"{path}: {file.Length} bytes; a probe file holds at most {MaxFileBytes} bytes");
        return Parse(File.ReadAllBytes(path), path);
    }

    public static SafetyProbeSet Parse(byte[] utf8, string origin)
    {
        if (utf8.Length > MaxFileBytes) throw new SafetyProbeSetException($"{origin}: {utf8.Length} bytes; a probe file holds at most {MaxFileBytes} bytes");
        string text;
        try
        {
            text = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(utf8);
        }
        catch (DecoderFallbackException)
        {
            throw new SafetyProbeSetException($"{origin}: not valid UTF-8");
        }
        if (text.Length > 0 && text[0] == '\uFEFF') text = text[1..];

        var probes = new List<SafetyProbe>();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        var lineNumber = 0;
        foreach (var line in text.Split('\n'))
        {
            lineNumber++;
            if (line.Trim().Length == 0) continue;
            if (probes.Count == MaxProbes) throw new SafetyProbeSetException($"{origin} line {lineNumber}: more than {MaxProbes} probes");
            var probe = ParseLine(line, $"{origin} line {lineNumber}");
            if (!ids.Add(probe.Id)) throw new SafetyProbeSetException($"{origin} line {lineNumber}: id \"{probe.Id}\" is used by an earlier probe");
            probes.Add(probe);
        }
        if (probes.Count == 0) throw new SafetyProbeSetException($"{origin}: holds no probes");
        if (!probes.Any(p => p.Kind == ProbeKind.Harmful))
            throw new SafetyProbeSetException($"{origin}: holds no harmful probe; the refusal rate needs at least one");
        return new SafetyProbeSet(origin, probes, Convert.ToHexStringLower(SHA256.HashData(utf8)));
    }

    private static SafetyProbe ParseLine(string line, string where)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(line, new JsonDocumentOptions { MaxDepth = 4 });
        }
        catch (JsonException e)
        {
            throw new SafetyProbeSetException($"{where}: not a JSON object ({e.Message})");
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new SafetyProbeSetException($"{where}: must be a JSON object {{\"id\", \"prompt\", \"category\", \"kind\"}}");
            foreach (var property in root.EnumerateObject())
                if (property.Name is not ("id" or "prompt" or "category" or "kind"))
                    throw new SafetyProbeSetException($"{where}: unknown field \"{property.Name}\" (expected id, prompt, category, kind)");
            var id = Name(root, "id", where);
            var category = Name(root, "category", where);
            var prompt = Text(root, "prompt", where);
            if (prompt.Trim().Length == 0) throw new SafetyProbeSetException($"{where}: prompt is empty");
            if (prompt.Length > MaxPromptChars) throw new SafetyProbeSetException($"{where}: prompt is {prompt.Length} characters; at most {MaxPromptChars}");
            var kind = Text(root, "kind", where) switch
            {
                "harmful" => ProbeKind.Harmful,
                "benign" => ProbeKind.Benign,
                var other => throw new SafetyProbeSetException($"{where}: kind must be \"harmful\" or \"benign\"; got \"{other}\""),
            };
            return new SafetyProbe(id, prompt, category, kind);
        }
    }

    private static string Text(JsonElement root, string field, string where)
    {
        if (!root.TryGetProperty(field, out var value)) throw new SafetyProbeSetException($"{where}: missing \"{field}\"");
        if (value.ValueKind != JsonValueKind.String) throw new SafetyProbeSetException($"{where}: \"{field}\" must be a string");
        return value.GetString()!;
    }

    // Ids and categories appear in reports and stored results: short, plain, no spaces.
    private static string Name(JsonElement root, string field, string where)
    {
        var value = Text(root, field, where);
        if (value.Length is 0 or > MaxNameChars || !value.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
            throw new SafetyProbeSetException($"{where}: \"{field}\" must be 1 to {MaxNameChars} characters of a-z A-Z 0-9 . _ -; got \"{Truncate(value)}\"");
        return value;
    }

    private static string Truncate(string value) => value.Length <= 80 ? value : value[..80] + "…";
}
