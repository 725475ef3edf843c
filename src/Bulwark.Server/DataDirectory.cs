namespace Bulwark.Server;

/// <summary>
/// The one folder that holds a Bulwark installation's world: models, the key store and state.
/// Every command given the same directory sees the same world. Resolution order: the explicit
/// value (a <c>--data-dir</c> flag), <c>BULWARK_DATA_DIR</c>, then a per-user default.
/// </summary>
public sealed class DataDirectory
{
    public const string EnvironmentVariable = "BULWARK_DATA_DIR";

    private DataDirectory(string root) => Root = root;

    /// <summary>Absolute path of the data directory (created on first use).</summary>
    public string Root { get; }

    public string ModelsPath => Path.Combine(Root, "models");

    public string StatePath => Path.Combine(Root, "state");

    /// <summary>The model registry: one folder per model name, one sub-folder per version.</summary>
    public string RegistryPath => Path.Combine(Root, "registry");

    /// <summary>Model-signing keys made by <c>bulwark models keygen</c> and the public keys trusted for loading.</summary>
    public string SigningKeysPath => Path.Combine(Root, "signing-keys");

    public static DataDirectory Resolve(string? explicitPath)
    {
        var path = explicitPath;
        if (string.IsNullOrWhiteSpace(path)) path = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (string.IsNullOrWhiteSpace(path)) path = DefaultPath();
        return new DataDirectory(Path.GetFullPath(path));
    }

    /// <summary>Creates the folder (and sub-folders) if missing, readable only by this user on Unix.</summary>
    public DataDirectory EnsureCreated()
    {
        foreach (var dir in new[] { Root, ModelsPath, StatePath })
        {
            if (Directory.Exists(dir)) continue;
            if (OperatingSystem.IsWindows()) Directory.CreateDirectory(dir);
            else Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        return this;
    }

    private static string DefaultPath()
    {
        var xdg = Environment.GetEnvironmentVariable("XDG_DATA_HOME");
        var baseDir = !string.IsNullOrWhiteSpace(xdg)
            ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share");
        return Path.Combine(baseDir, "bulwark");
    }
}
