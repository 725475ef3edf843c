using Bulwark.Bench.Http;
using Bulwark.Server.Tests.Cli;

namespace Bulwark.Server.Tests.Replicas;

/// <summary>
/// A <c>bulwark serve</c> process for tests: the CLI built beside them, with a KV cache small enough
/// for several processes on a 2-core CI machine.
/// </summary>
internal static class TestServe
{
    private static readonly string[] SmallKvCache = ["--kv-cache-memory", "16MiB"];

    public static Task<ServeProcess> StartAsync(IReadOnlyDictionary<string, string> environment, string dataDir) =>
        ServeProcess.StartAsync(BuiltCli.Path, environment, dataDir, SmallKvCache);
}
