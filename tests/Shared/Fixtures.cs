using System.Runtime.CompilerServices;

namespace Bulwark.Testing;

/// <summary>
/// Finds the repository root and <c>../shared/fixtures</c> (data from outside the project with
/// reference outputs). Tests that need the fixtures use <see cref="FixtureFactAttribute"/> or
/// <see cref="FixtureTheoryAttribute"/>, which skip with a message when the folder is absent;
/// <c>test.sh</c> refuses to run without it, so CI never skips silently.
/// </summary>
public static class Fixtures
{
    private static readonly Lazy<string> RootLazy = new(FindRepositoryRoot);

    /// <summary>The repository root (the folder holding Bulwark.slnx).</summary>
    public static string RepositoryRoot => RootLazy.Value;

    /// <summary>The fixtures folder: BULWARK_FIXTURES if set, else ../shared/fixtures beside the repository.</summary>
    public static string Root =>
        Environment.GetEnvironmentVariable("BULWARK_FIXTURES") is { Length: > 0 } env
            ? env
            : Path.GetFullPath(Path.Combine(RepositoryRoot, "..", "shared", "fixtures"));

    public static bool Available => Directory.Exists(Root);

    public const string MissingMessage =
        "../shared/fixtures is not beside the repository (set BULWARK_FIXTURES to its path); test.sh requires it";

    /// <summary>Path of a file or folder inside the fixtures folder.</summary>
    public static string PathOf(params string[] parts) => Path.Combine([Root, .. parts]);

    /// <summary>A fresh temporary folder for one test, removed by the caller (or left in /tmp).</summary>
    public static string NewTempDirectory([CallerMemberName] string name = "")
    {
        var dir = Path.Combine(Path.GetTempPath(), "bulwark-tests", $"{name}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        return dir;
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Bulwark.slnx")))
                return dir.FullName;
        }
        throw new InvalidOperationException("Bulwark.slnx not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>A fact that needs ../shared/fixtures; skipped with a clear message when it is absent.</summary>
public sealed class FixtureFactAttribute : FactAttribute
{
    public FixtureFactAttribute()
    {
        if (!Fixtures.Available) Skip = Fixtures.MissingMessage;
    }
}

/// <summary>A theory that needs ../shared/fixtures; skipped with a clear message when it is absent.</summary>
public sealed class FixtureTheoryAttribute : TheoryAttribute
{
    public FixtureTheoryAttribute()
    {
        if (!Fixtures.Available) Skip = Fixtures.MissingMessage;
    }
}
