using System.Text.RegularExpressions;

namespace Bulwark.Server.Registry;

/// <summary>Model names: lowercase letters, digits, '.', '_' and '-', 1–64 characters, starting with a letter or digit.</summary>
public static partial class ModelName
{
    [GeneratedRegex("^[a-z0-9][a-z0-9._-]{0,63}$")]
    private static partial Regex Pattern();

    public static string Validate(string name) =>
        Pattern().IsMatch(name) && !name.Contains("..", StringComparison.Ordinal)
            ? name
            : throw new RegistryException($"model name '{name}' is invalid: use 1–64 of a-z 0-9 . _ - starting with a letter or digit");
}

/// <summary>Version names are <c>v1</c>, <c>v2</c>, ... in the order they were added.</summary>
public static partial class ModelVersion
{
    [GeneratedRegex("^v[1-9][0-9]{0,8}$")]
    private static partial Regex Pattern();

    public static string Validate(string version) =>
        Pattern().IsMatch(version) ? version : throw new RegistryException($"version '{version}' is invalid: versions are v1, v2, ...");

    public static int Number(string version) => int.Parse(Validate(version).AsSpan(1), System.Globalization.CultureInfo.InvariantCulture);

    public static string FromNumber(int n) => "v" + n.ToString(System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>File paths inside a manifest: relative, forward slashes, no '..', no empty or hidden-escape segments.</summary>
public static class ManifestPaths
{
    public const int MaxLength = 512;

    public static string Validate(string path, string origin)
    {
        if (path.Length == 0 || path.Length > MaxLength)
            throw new RegistryException($"{origin}: file path of length {path.Length} is outside 1..{MaxLength}");
        if (path.StartsWith('/') || path.Contains('\\') || path.Contains('\0') || path.Contains(':'))
            throw new RegistryException($"{origin}: file path '{path}' must be relative with forward slashes");
        foreach (var segment in path.Split('/'))
        {
            if (segment.Length == 0 || segment == "." || segment == "..")
                throw new RegistryException($"{origin}: file path '{path}' has an empty, '.' or '..' segment");
        }
        return path;
    }
}

/// <summary>SHA-256 digests are written as 64 lowercase hex digits.</summary>
public static class Sha256Hex
{
    public static bool IsValid(string s) => s.Length == 64 && s.All(c => c is >= '0' and <= '9' or >= 'a' and <= 'f');
}
