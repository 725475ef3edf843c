using Bulwark.Testing;

namespace Bulwark.Server.Tests.Cli;

/// <summary>Where the <c>bulwark</c> CLI these tests were built with lies, for tests that run it as a process.</summary>
internal static class BuiltCli
{
    /// <summary>
    /// The CLI's own build output: <c>src/Bulwark.Cli/bin/&lt;configuration&gt;/net10.0/bulwark.dll</c>, in the
    /// configuration these tests were built in. (The copy in the test folder cannot run on its own:
    /// the test project's framework reference drops package assemblies it lists.)
    /// </summary>
    public static string Path
    {
        get
        {
            var testBin = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(System.IO.Path.DirectorySeparatorChar));
            var framework = testBin.Name;
            var configuration = testBin.Parent!.Name;
            var path = System.IO.Path.Combine(Fixtures.RepositoryRoot, "src", "Bulwark.Cli", "bin", configuration, framework, "bulwark.dll");
            return File.Exists(path)
                ? path
                : throw new FileNotFoundException($"the CLI is not built at {path}; build the tests (they reference src/Bulwark.Cli) first", path);
        }
    }
}
