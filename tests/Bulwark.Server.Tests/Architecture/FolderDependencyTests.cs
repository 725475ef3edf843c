using Bulwark.Testing;
using Xunit.Abstractions;

namespace Bulwark.Server.Tests.Architecture;

/// <summary>
/// No import circle between folders of src/. How it is checked: each project under src/ is
/// compiled from its source with Roslyn (project references as compilation references, the
/// framework and package assemblies the test runs with as metadata), and every name in the code
/// that is spelled like something declared in src/ — in simple, generic and qualified names, member
/// access, object creation (also <c>new()</c>), attributes, base lists, constraints, <c>nameof</c>,
/// <c>using static</c> and aliases — is resolved with the semantic model. A type it binds to, or
/// the type holding the member it binds to (extension methods included; array elements and type
/// arguments too), declared in another file of src/ gives the edge "the file's folder -> the
/// declaring file's folder"; a partial type is placed by the part that declares the member used
/// (by all its parts when the type itself is named).
/// Documentation comments (<c>&lt;see cref&gt;</c>) are not read, and <c>var</c> or a user-defined
/// operator is not a reference (a member used through a <c>var</c> is). The graph is built at two
/// granularities: the full folder (<c>Bulwark.Engine/Serving/KvCache</c>) and the first two parts
/// (<c>Bulwark.Server/Guardrails</c>); a file in a project's root belongs to the project's folder.
/// A strongly connected component (Tarjan) of more than one folder is a circle, reported with every
/// edge inside it and example references <c>File.cs -> Type (Folder)</c>, followed by "via
/// Member" when the file uses the type only through members. The circle tests first assert that
/// every such name bound, so a tree that did not compile cannot pass by having no edges. The full
/// edge list: <c>dotnet test tests/Bulwark.Server.Tests -c Release --filter
/// FullyQualifiedName~FolderDependency --logger "console;verbosity=detailed"</c>.
/// </summary>
public sealed class FolderDependencyTests(ITestOutputHelper output)
{
    private const int ExamplesPerEdge = 3;

    private static readonly Lazy<SourceReferences> Analysis =
        new(() => SourceReferences.Analyse(Path.Combine(Fixtures.RepositoryRoot, "src")));

    [Fact]
    public void EveryNameInSrcBindsSoNoDependencyIsMissed()
    {
        var analysis = Analysis.Value;
        output.WriteLine($"{analysis.FileCount} files, {analysis.References.Count} references, analysed in {analysis.Elapsed.TotalSeconds:F1} s");
        Assert.True(analysis.FileCount > 0, "no .cs file found under src/");
        AssertBound(analysis);
    }

    [Fact]
    public void NoImportCircleBetweenFoldersOfSrc() => AssertNoCircle(FolderGraph.FullFolder);

    [Fact]
    public void NoImportCircleBetweenFeatureFoldersOfSrc() => AssertNoCircle(FolderGraph.FeatureFolder);

    [Fact]
    public void FolderDependencyEdgesAreWrittenToTheTestOutput()
    {
        var analysis = Analysis.Value;
        foreach (var (name, node) in new (string, Func<string, string>)[]
                 { ("full folders", FolderGraph.FullFolder), ("first two parts", FolderGraph.FeatureFolder) })
        {
            var graph = new FolderGraph(analysis.Folders, analysis.References, node);
            output.WriteLine($"== Edges between {name} of src/ ({graph.EdgeCount}): a file in A uses a type declared in B");
            output.WriteLine(graph.DescribeEdges());
            output.WriteLine($"== Circles between {name} of src/");
            output.WriteLine(graph.DescribeCircles(ExamplesPerEdge) is { Length: > 0 } circles ? circles : "none");
            Assert.True(graph.EdgeCount > 0, "no edge at all between folders of src/: the analysis found nothing");
        }
        output.WriteLine($"Analysed {analysis.FileCount} files in {analysis.Elapsed.TotalSeconds:F1} s");
    }

    private static void AssertNoCircle(Func<string, string> node)
    {
        var analysis = Analysis.Value;
        AssertBound(analysis);
        var graph = new FolderGraph(analysis.Folders, analysis.References, node);
        var circles = graph.DescribeCircles(ExamplesPerEdge);
        Assert.True(circles.Length == 0,
            "Import circles between folders of src/ (A -> B: a file in A uses a type declared in B; " +
            "break each circle by removing the references of one of its edges):\n" + circles);
    }

    private static void AssertBound(SourceReferences analysis) =>
        Assert.True(analysis.Unbound.Count == 0,
            $"{analysis.Unbound.Count} names in src/ bound to no symbol, so the folder graph may miss edges:\n" +
            string.Join('\n', analysis.Unbound.Take(20)));
}
