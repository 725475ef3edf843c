using System.Text.RegularExpressions;
using Bulwark.Testing;

namespace Bulwark.Server.Tests.Deploy;

/// <summary>
/// The Dockerfile's promises, read from the file: the image cannot be built in the suite (no
/// container engine and no official image on the build machine; deploy/docker/verify-image.sh builds
/// and runs it with podman, opt-in). What the deployments assume of the image is held here.
/// </summary>
public sealed partial class DockerfileTests
{
    private static readonly string Text = File.ReadAllText(Path.Combine(Fixtures.RepositoryRoot, "Dockerfile"));
    private static readonly string[] Lines = [.. Text.Replace("\\\n", " ").Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#'))];

    [Fact]
    public void ItBuildsOnTheOfficialSdkAndRunsOnTheOfficialAspNetRuntime()
    {
        Assert.Contains("ARG SDK_IMAGE=mcr.microsoft.com/dotnet/sdk:10.0", Lines);
        Assert.Contains("ARG RUNTIME_IMAGE=mcr.microsoft.com/dotnet/aspnet:10.0", Lines);
        Assert.Equal(["FROM ${SDK_IMAGE} AS build", "FROM ${RUNTIME_IMAGE} AS runtime"], Lines.Where(l => l.StartsWith("FROM ")));
        Assert.Contains(Lines, l => l.StartsWith("RUN dotnet publish src/Bulwark.Cli/Bulwark.Cli.csproj -c Release"));
        // Only the published output reaches the runtime stage.
        Assert.Equal(["COPY --from=build /out /app"], Lines.SkipWhile(l => !l.StartsWith("FROM ${RUNTIME_IMAGE}")).Where(l => l.StartsWith("COPY")));
    }

    [Fact]
    public void ItRunsAsTheNonRootUserWithTheDataDirectoryAsAVolume()
    {
        var runtime = Lines.SkipWhile(l => !l.StartsWith("FROM ${RUNTIME_IMAGE}")).ToList();
        Assert.Equal("USER $APP_UID", runtime.Last(l => l.StartsWith("USER ")));
        Assert.Contains("ARG APP_UID=1654", runtime);
        Assert.Contains("VOLUME [\"/data\"]", runtime);
        Assert.Contains(runtime, l => l.StartsWith("ENV ") && l.Contains("BULWARK_DATA_DIR=/data") && l.Contains("Bulwark__Server__Host=0.0.0.0") && l.Contains("Bulwark__Server__Port=8000"));
        // glibc reads it at process start, before serve can cap its malloc arenas (docs/reliability.md).
        Assert.Contains(runtime, l => l.StartsWith("ENV ") && l.Contains("MALLOC_ARENA_MAX=2 "));
        // The Kubernetes manifests run it as that uid, on the port the image listens on.
        var deployment = File.ReadAllText(DeployTools.PathOf("kubernetes", "deployment.yaml"));
        Assert.Contains("runAsUser: 1654", deployment);
        Assert.Contains("EXPOSE 8000", runtime);
        Assert.Equal("ENTRYPOINT [\"/app/bulwark\"]", runtime.Single(l => l.StartsWith("ENTRYPOINT")));
    }

    [Fact]
    public void ItsHealthcheckAsksHealthOnTheConfiguredPort()
    {
        var check = Lines.Single(l => l.StartsWith("HEALTHCHECK"));
        Assert.Contains("/dev/tcp/127.0.0.1/${Bulwark__Server__Port}", check);
        Assert.Contains("GET /health HTTP/1.0", check);
        Assert.Matches(@"--start-period=\d+s", check);
    }

    [Fact]
    public void NoSecretNorStateCanReachALayer()
    {
        Assert.DoesNotMatch("(?i)(secret|token|password|Postgres|Redis)[A-Za-z_]*=", string.Join('\n', Lines.Where(l => l.StartsWith("ENV ") || l.StartsWith("ARG "))));
        // The build context is only what the build reads: the ignore file starts by excluding everything.
        var ignore = File.ReadAllLines(Path.Combine(Fixtures.RepositoryRoot, ".dockerignore")).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
        Assert.Equal("*", ignore[0]);
        Assert.Equal(["!Directory.Build.props", "!Directory.Packages.props", "!global.json", "!src/"], ignore.Where(l => l.StartsWith('!')).Order());
        foreach (var copy in Lines.Where(l => l.StartsWith("COPY ") && !l.StartsWith("COPY --from")))
            foreach (Match source in CopiedPath().Matches(copy[5..]))
                Assert.True(source.Value.StartsWith("src/") || source.Value is "global.json" or "Directory.Build.props" or "Directory.Packages.props" or "./",
                    $"COPY of {source.Value}, which .dockerignore keeps out of the context");
    }

    [GeneratedRegex(@"[^\s]+(?=\s)")]
    private static partial Regex CopiedPath();
}
