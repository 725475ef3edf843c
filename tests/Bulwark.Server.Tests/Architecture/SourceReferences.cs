using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Diagnostics;
using System.Xml.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Bulwark.Server.Tests.Architecture;

/// <summary>A file of src/ names a type, or a member of it (<see cref="Member"/>, null when the
/// type itself is named), declared in another file of src/. Paths are relative to src/ with '/'.</summary>
internal sealed record TypeReference(string FromFile, string TypeName, string? Member, string ToFile)
{
    public string FromFolder => FolderOf(FromFile);
    public string ToFolder => FolderOf(ToFile);

    /// <summary>The folder of a file relative to src/: <c>Bulwark.Server/Api/X.cs</c> is in
    /// <c>Bulwark.Server/Api</c>, <c>Bulwark.Server/DataDirectory.cs</c> in <c>Bulwark.Server</c>.</summary>
    public static string FolderOf(string file) => file.LastIndexOf('/') is >= 0 and var slash ? file[..slash] : ".";
}

/// <summary>
/// Every type reference between files of src/, found by Roslyn's semantic model: each project is
/// compiled from its source (project references as compilation references, so their types keep
/// their declaring files), and every name that could bind into src/ is resolved to its symbol.
/// </summary>
internal sealed class SourceReferences
{
    // What Microsoft.NET.Sdk adds with <ImplicitUsings>enable</ImplicitUsings> (obj/ is not read).
    private const string ImplicitUsings = """
        global using System;
        global using System.Collections.Generic;
        global using System.IO;
        global using System.Linq;
        global using System.Net.Http;
        global using System.Threading;
        global using System.Threading.Tasks;
        """;

    private static readonly SymbolDisplayFormat TypeNameFormat = new(
        typeQualificationStyle: SymbolDisplayTypeQualificationStyle.NameAndContainingTypes,
        genericsOptions: SymbolDisplayGenericsOptions.IncludeTypeParameters);

    public required IReadOnlyList<TypeReference> References { get; init; }

    /// <summary>Every folder of src/ that holds a .cs file, referenced or not.</summary>
    public required IReadOnlyList<string> Folders { get; init; }

    public required int FileCount { get; init; }

    /// <summary>Names that bound to no symbol, as "file(line): 'name' reason". Any one of them
    /// means the tree was not compiled as its project is, so edges could be missing.</summary>
    public required IReadOnlyList<string> Unbound { get; init; }

    public required TimeSpan Elapsed { get; init; }

    public static SourceReferences Analyse(string srcRoot)
    {
        var clock = Stopwatch.StartNew();
        srcRoot = Path.GetFullPath(srcRoot);
        var platform = PlatformReferences();
        var projects = Directory.EnumerateFiles(srcRoot, "*.csproj", SearchOption.AllDirectories)
            .Where(p => !InBuildOutput(p[srcRoot.Length..]))
            .ToDictionary(Path.GetFullPath, p => XDocument.Load(p));
        var compiled = new Dictionary<string, CSharpCompilation>();
        foreach (var project in projects.Keys)
            Compile(project, projects, compiled, platform);

        var files = compiled.Values
            .SelectMany(c => c.SyntaxTrees.Select(t => (Compilation: c, Tree: t, Path: Relative(srcRoot, t.FilePath))))
            .Where(x => x.Path is not null)
            .ToList();
        var names = NamesDeclaredIn(compiled.Values);
        var references = new ConcurrentDictionary<TypeReference, byte>();
        var unbound = new ConcurrentBag<string>();
        // Perf: binding is most of the time and the trees are independent; a compilation and its
        // semantic models answer queries from several threads.
        Parallel.ForEach(files, x => Walk(x.Compilation.GetSemanticModel(x.Tree), srcRoot, x.Path!, names, references, unbound));

        return new SourceReferences
        {
            References = [.. references.Keys.OrderBy(r => r.FromFile, StringComparer.Ordinal)
                .ThenBy(r => r.TypeName, StringComparer.Ordinal).ThenBy(r => r.Member, StringComparer.Ordinal)
                .ThenBy(r => r.ToFile, StringComparer.Ordinal)],
            Folders = [.. files.Select(x => TypeReference.FolderOf(x.Path!)).Distinct().Order(StringComparer.Ordinal)],
            FileCount = files.Count,
            Unbound = [.. unbound.Order(StringComparer.Ordinal)],
            Elapsed = clock.Elapsed,
        };
    }

    private static CSharpCompilation Compile(string csproj, Dictionary<string, XDocument> projects,
        Dictionary<string, CSharpCompilation> compiled, IReadOnlyList<MetadataReference> platform)
    {
        if (compiled.TryGetValue(csproj, out var done)) return done;
        var xml = projects[csproj];
        var dir = Path.GetDirectoryName(csproj)!;
        string? Property(string name) => xml.Descendants(name).Select(e => e.Value.Trim()).FirstOrDefault();
        IEnumerable<string> Items(string name) => xml.Descendants(name).Select(e => (string?)e.Attribute("Include")).OfType<string>();

        var dependencies = Items("ProjectReference")
            .Select(p => Compile(Path.GetFullPath(Path.Combine(dir, p)), projects, compiled, platform).ToMetadataReference());
        var parse = new CSharpParseOptions(LanguageVersion.Latest, DocumentationMode.None);
        // The attributes the SDK would generate into obj/: implicit usings and InternalsVisibleTo.
        var generated = ImplicitUsings + string.Concat(Items("InternalsVisibleTo")
            .Select(a => $"\n[assembly: System.Runtime.CompilerServices.InternalsVisibleTo(\"{a}\")]"));
        var trees = Directory.EnumerateFiles(dir, "*.cs", SearchOption.AllDirectories)
            .Where(f => !InBuildOutput(f[dir.Length..]))
            .Order(StringComparer.Ordinal)
            .Select(f => CSharpSyntaxTree.ParseText(File.ReadAllText(f), parse, path: f))
            .Append(CSharpSyntaxTree.ParseText(generated, parse, path: ""));
        var options = new CSharpCompilationOptions(
            Property("OutputType") == "Exe" ? OutputKind.ConsoleApplication : OutputKind.DynamicallyLinkedLibrary,
            // Perf: nullable analysis would add half again to the binding time and cannot change what a name binds to.
            nullableContextOptions: NullableContextOptions.Disable, allowUnsafe: true);
        var compilation = CSharpCompilation.Create(Property("AssemblyName") ?? Path.GetFileNameWithoutExtension(csproj),
            trees, [.. platform, .. dependencies], options);
        compiled[csproj] = compilation;
        return compilation;
    }

    /// <summary>The assemblies the test runs with: the shared frameworks (.NET and ASP.NET Core) and
    /// the packages src/ uses, minus Bulwark's own, which are compiled from source instead.</summary>
    private static IReadOnlyList<MetadataReference> PlatformReferences() =>
        [.. ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(p => !Path.GetFileName(p).StartsWith("Bulwark", StringComparison.OrdinalIgnoreCase))
            .Select(p => MetadataReference.CreateFromFile(p))];

    /// <summary>Every spelling by which code can name something declared in src/: the names of its
    /// namespaces, types and members (an attribute also without "Attribute") and the aliases of its
    /// using directives. A name spelled otherwise cannot bind into src/.</summary>
    private static HashSet<string> NamesDeclaredIn(IEnumerable<CSharpCompilation> compilations)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        void Add(INamespaceOrTypeSymbol container)
        {
            foreach (var member in container.GetMembers())
            {
                names.Add(member.Name);
                if (member is INamedTypeSymbol && member.Name.EndsWith("Attribute", StringComparison.Ordinal))
                    names.Add(member.Name[..^"Attribute".Length]);
                if (member is INamespaceOrTypeSymbol inner) Add(inner);
            }
        }
        foreach (var compilation in compilations)
        {
            Add(compilation.Assembly.GlobalNamespace);
            foreach (var tree in compilation.SyntaxTrees)
                names.UnionWith(tree.GetRoot().DescendantNodes(n => n is CompilationUnitSyntax or BaseNamespaceDeclarationSyntax)
                    .OfType<UsingDirectiveSyntax>().Select(u => u.Alias?.Name.Identifier.ValueText).OfType<string>());
        }
        return names;
    }

    private static void Walk(SemanticModel model, string srcRoot, string from, HashSet<string> names,
        ConcurrentDictionary<TypeReference, byte> references, ConcurrentBag<string> unbound)
    {
        // DescendantNodes does not enter trivia, so <see cref> in documentation comments is not read.
        foreach (var node in model.SyntaxTree.GetRoot().DescendantNodes())
        {
            // Perf: a name spelled like nothing in src/ (Span, Length, Math...) cannot bind into it,
            // so the semantic model, the costly part, is not asked about it.
            if (node is SimpleNameSyntax name ? !names.Contains(name.Identifier.ValueText)
                : node is not ImplicitObjectCreationExpressionSyntax) continue;
            // `var x = ...` names no type; a member used through x is still seen where it is named.
            if (node is IdentifierNameSyntax { IsVar: true }) continue;
            var info = model.GetSymbolInfo(node);
            if (info.Symbol is null or IErrorTypeSymbol && (info.CandidateSymbols.IsEmpty || info.CandidateReason != CandidateReason.MemberGroup))
            {
                if (!NamesNothing(node))
                    unbound.Add($"{from}({node.GetLocation().GetLineSpan().StartLinePosition.Line + 1}): '{node}' " +
                        (info.CandidateSymbols.IsEmpty ? "binds to nothing" : info.CandidateReason.ToString()));
                continue;
            }
            ImmutableArray<ISymbol> symbols = info.Symbol is { } s ? [s] : info.CandidateSymbols;
            foreach (var symbol in symbols)
            foreach (var (type, declared) in Targets(symbol))
            {
                var at = declared.DeclaringSyntaxReferences;
                if (at.IsEmpty) at = type.DeclaringSyntaxReferences; // e.g. an implicit constructor
                foreach (var syntax in at)
                {
                    if (Relative(srcRoot, syntax.SyntaxTree.FilePath) is { } to && to != from)
                        references.TryAdd(new TypeReference(from, type.ToDisplayString(TypeNameFormat),
                            declared is ITypeSymbol ? null : declared.Name, to), 0);
                }
            }
        }
    }

    /// <summary>Names that bind to no symbol in code that compiles: the <c>nameof</c> operator, the
    /// alias in <c>using A = B;</c> and the <c>notnull</c>/<c>unmanaged</c> constraints.</summary>
    private static bool NamesNothing(SyntaxNode node) => node switch
    {
        IdentifierNameSyntax { Identifier.Text: "nameof", Parent: InvocationExpressionSyntax } => true,
        IdentifierNameSyntax { Parent: NameEqualsSyntax { Parent: UsingDirectiveSyntax } } => true,
        IdentifierNameSyntax { Identifier.Text: "notnull" or "unmanaged", Parent: TypeConstraintSyntax } => true,
        _ => false,
    };

    /// <summary>The types a symbol depends on, each with the symbol whose declaration locates it:
    /// a type itself (with its type arguments, array elements...), or the type containing a member,
    /// located by the member's own declaration (so a partial type is placed by the part that is used).</summary>
    private static IEnumerable<(INamedTypeSymbol Type, ISymbol Declared)> Targets(ISymbol symbol)
    {
        switch (symbol)
        {
            case IAliasSymbol alias:
                return Targets(alias.Target);
            case ITypeSymbol type:
                return Types(type).Select(t => (t, (ISymbol)t));
            case IMethodSymbol { MethodKind: MethodKind.LocalFunction or MethodKind.AnonymousFunction }:
                return [];
            case IMethodSymbol or IPropertySymbol or IFieldSymbol or IEventSymbol:
                var member = ((symbol as IMethodSymbol)?.ReducedFrom ?? symbol).OriginalDefinition;
                return member.ContainingType is { IsTupleType: false, IsAnonymousType: false } owner
                    ? [(owner.OriginalDefinition, member)]
                    : [];
            default: // namespaces, locals, parameters, labels, range variables, discards
                return [];
        }
    }

    private static IEnumerable<INamedTypeSymbol> Types(ITypeSymbol type) => type switch
    {
        IArrayTypeSymbol array => Types(array.ElementType),
        IPointerTypeSymbol pointer => Types(pointer.PointedAtType),
        IFunctionPointerTypeSymbol f => Types(f.Signature.ReturnType).Concat(f.Signature.Parameters.SelectMany(p => Types(p.Type))),
        // A tuple or anonymous type "declared" where it is written is no dependency; its elements are.
        INamedTypeSymbol { IsTupleType: true } tuple => tuple.TupleElements.SelectMany(e => Types(e.Type)),
        INamedTypeSymbol { IsAnonymousType: true } => [],
        INamedTypeSymbol named => named.TypeArguments.SelectMany(Types).Prepend(named.OriginalDefinition),
        _ => [], // type parameters, dynamic, error types (a name that binds to one is reported as unbound)
    };

    private static bool InBuildOutput(string path) =>
        path.Split('/', '\\').Any(part => part is "bin" or "obj");

    /// <summary>The path relative to src/ with '/' separators, or null when outside src/.</summary>
    private static string? Relative(string srcRoot, string path)
    {
        if (path.Length == 0) return null;
        var relative = Path.GetRelativePath(srcRoot, path);
        return relative.StartsWith("..", StringComparison.Ordinal) || Path.IsPathRooted(relative)
            ? null
            : relative.Replace('\\', '/');
    }
}
