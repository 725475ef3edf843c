using System.Security.Cryptography;

namespace Bulwark.Server.Security;

/// <summary>
/// The HMAC key that turns API keys into stored hashes. Taken from configuration
/// (<c>Bulwark:Security:HmacSecret</c>, base64, at least 32 bytes; required when several replicas
/// share a PostgreSQL store) or else from <c>state/hmac.secret</c> in the data directory, created
/// from the CSPRNG on first use and readable only by its owner.
/// </summary>
public static class ServerSecret
{
    public const string FileName = "hmac.secret";

    public static byte[] Load(string? configured, string stateDirectory)
    {
        if (!string.IsNullOrWhiteSpace(configured))
        {
            byte[] bytes;
            try { bytes = Convert.FromBase64String(configured.Trim()); }
            catch (FormatException) { throw new InvalidOperationException("Bulwark:Security:HmacSecret must be base64 (the value is not shown)"); }
            if (bytes.Length < 32)
                throw new InvalidOperationException($"Bulwark:Security:HmacSecret must decode to at least 32 bytes; got {bytes.Length}");
            return bytes;
        }

        var path = Path.Combine(stateDirectory, FileName);
        if (File.Exists(path)) return ReadFile(path);

        Directory.CreateDirectory(stateDirectory);
        var secret = RandomNumberGenerator.GetBytes(32);
        try
        {
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            using var stream = new FileStream(path, options);
            using var writer = new StreamWriter(stream);
            writer.Write(Convert.ToBase64String(secret));
        }
        catch (IOException) when (File.Exists(path))
        {
            // Another process created it first; everyone must use that one.
            return ReadFile(path);
        }
        return secret;
    }

    private static byte[] ReadFile(string path)
    {
        for (var attempt = 0; ; attempt++)
        {
            var text = File.ReadAllText(path).Trim();
            if (text.Length > 0 || attempt == 20) return Convert.FromBase64String(text);
            Thread.Sleep(50); // the creator is between CreateNew and Write
        }
    }
}
