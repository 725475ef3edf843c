using System.Diagnostics;
using Npgsql;

namespace Bulwark.Server.Tests.Faults;

/// <summary>
/// A PostgreSQL cluster of one test's own (initdb into a temp folder, trust authentication, a free
/// loopback port, its socket in that folder), started as the <c>postgres</c> user when the tests
/// run as root, as PostgreSQL requires.
/// </summary>
internal sealed class PrivatePostgres : PrivateServer
{
    private readonly string _bin;

    private PrivatePostgres() : base("postgres")
    {
        var found = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin")).Where(b => File.Exists(Path.Combine(b, "postgres")))
                .OrderBy(b => int.TryParse(Path.GetFileName(Path.GetDirectoryName(b)), out var v) ? v : 0).LastOrDefault()
            : null;
        _bin = found ?? throw new InvalidOperationException(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres): install the Debian package 'postgresql' (./test.sh does, through scripts/test-services.sh)");
    }

    private string DataPath => Path.Combine(Folder, "data");

    /// <summary>A connection string for the cluster's <c>postgres</c> database, as Bulwark would be configured with.</summary>
    public string ConnectionString => $"Host=127.0.0.1;Port={Port};Username=postgres;Database=postgres";

    public static async Task<PrivatePostgres> StartNewAsync()
    {
        var postgres = new PrivatePostgres();
        try
        {
            if (Environment.UserName == "root") Run("chown", "postgres:postgres", postgres.Folder);
            postgres.RunAs(Path.Combine(postgres._bin, "initdb"), "-D", postgres.DataPath, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync");
            await postgres.StartAsync();
        }
        catch { await postgres.DisposeAsync(); throw; }
        return postgres;
    }

    protected override ProcessStartInfo StartInfo() => AsPostgresUser(Path.Combine(_bin, "postgres"),
        "-D", DataPath, "-p", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-k", Folder,
        "-c", "listen_addresses=127.0.0.1", "-c", "shared_buffers=16MB", "-c", "max_connections=40");

    protected override async Task<bool> AnswersAsync()
    {
        try
        {
            await using var connection = new NpgsqlConnection(ConnectionString + ";Pooling=false;Timeout=2");
            await connection.OpenAsync();
            return true;
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException) { return false; }
    }

    private ProcessStartInfo AsPostgresUser(string program, params string[] args) =>
        Environment.UserName == "root"
            ? new ProcessStartInfo("setpriv", ["--reuid=postgres", "--regid=postgres", "--init-groups", program, .. args])
            : new ProcessStartInfo(program, args);

    private void RunAs(string program, params string[] args)
    {
        var start = AsPostgresUser(program, args);
        Run(start.FileName, [.. start.ArgumentList]);
    }

    private static void Run(string program, params string[] args)
    {
        var start = new ProcessStartInfo(program, args) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{program} {string.Join(' ', args)} failed ({process.ExitCode}):\n{stdout.Result}{stderr}");
    }
}
