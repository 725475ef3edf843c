using System.Text;

namespace Bulwark.Server.Tests.Architecture;

/// <summary>
/// Folders of src/ as nodes, "a file in A uses a type declared in B" as the edge A -> B, at a
/// chosen granularity (a function that maps a file's folder to its node). An import circle is a
/// strongly connected component of more than one folder.
/// </summary>
internal sealed class FolderGraph
{
    private readonly SortedDictionary<string, SortedDictionary<string, List<TypeReference>>> _edges = new(StringComparer.Ordinal);

    public FolderGraph(IEnumerable<string> folders, IEnumerable<TypeReference> references, Func<string, string> node)
    {
        foreach (var folder in folders)
            _edges.TryAdd(node(folder), new(StringComparer.Ordinal));
        foreach (var r in references)
        {
            var (from, to) = (node(r.FromFolder), node(r.ToFolder));
            if (from == to) continue;
            var targets = _edges[from];
            _edges.TryAdd(to, new(StringComparer.Ordinal));
            if (!targets.TryGetValue(to, out var list)) targets[to] = list = [];
            list.Add(r);
        }
    }

    /// <summary>The folder itself: <c>Bulwark.Engine/Serving/KvCache</c>.</summary>
    public static string FullFolder(string folder) => folder;

    /// <summary>The first two parts: <c>Bulwark.Server/Guardrails</c> covers Guardrails/Input and
    /// Guardrails/Output; a project's root files stay in <c>Bulwark.Server</c>.</summary>
    public static string FeatureFolder(string folder) => string.Join('/', folder.Split('/').Take(2));

    public int EdgeCount => _edges.Values.Sum(t => t.Count);

    /// <summary>Strongly connected components of more than one folder (Tarjan), each sorted.</summary>
    public IReadOnlyList<IReadOnlyList<string>> Circles()
    {
        var index = new Dictionary<string, int>();
        var low = new Dictionary<string, int>();
        var stack = new Stack<string>();
        var onStack = new HashSet<string>();
        var circles = new List<IReadOnlyList<string>>();

        void Connect(string v)
        {
            index[v] = low[v] = index.Count;
            stack.Push(v);
            onStack.Add(v);
            foreach (var w in _edges[v].Keys)
            {
                if (!index.ContainsKey(w)) { Connect(w); low[v] = Math.Min(low[v], low[w]); }
                else if (onStack.Contains(w)) low[v] = Math.Min(low[v], index[w]);
            }
            if (low[v] != index[v]) return;
            var component = new List<string>();
            string popped;
            do { popped = stack.Pop(); onStack.Remove(popped); component.Add(popped); } while (popped != v);
            if (component.Count > 1) circles.Add([.. component.Order(StringComparer.Ordinal)]);
        }

        foreach (var v in _edges.Keys)
            if (!index.ContainsKey(v)) Connect(v);
        return [.. circles.OrderBy(c => c[0], StringComparer.Ordinal)];
    }

    /// <summary>Each circle with every edge inside it, its number of references and a few examples,
    /// so the reader sees which references to move to break it.</summary>
    public string DescribeCircles(int examplesPerEdge)
    {
        var text = new StringBuilder();
        foreach (var circle in Circles())
        {
            text.AppendLine($"Circle of {circle.Count} folders: {string.Join(", ", circle)}");
            var members = circle.ToHashSet();
            foreach (var from in circle)
            foreach (var (to, references) in _edges[from].Where(e => members.Contains(e.Key)))
                AppendEdge(text, from, to, references, examplesPerEdge);
        }
        return text.ToString();
    }

    /// <summary>Every edge of the graph with all its references.</summary>
    public string DescribeEdges()
    {
        var text = new StringBuilder();
        foreach (var (from, targets) in _edges)
        foreach (var (to, references) in targets)
            AppendEdge(text, from, to, references, int.MaxValue);
        return text.ToString();
    }

    private static void AppendEdge(StringBuilder text, string from, string to, List<TypeReference> references, int examples)
    {
        // One line per file and type. A type used only through members that the file never names
        // (an extension method, a property of a returned value) shows them, as the file never names it.
        var lines = references.GroupBy(r => (File: FileName(r.FromFile), r.TypeName, r.ToFolder))
            .Select(g => $"{g.Key.File} -> {g.Key.TypeName} ({g.Key.ToFolder})" + (g.Any(r => r.Member is null) ? ""
                : $" via {string.Join(", ", g.Select(r => r.Member).Distinct().Order(StringComparer.Ordinal))}"))
            .ToList();
        text.AppendLine($"  {from} -> {to} ({lines.Count} references)");
        foreach (var line in lines.Take(examples))
            text.AppendLine($"      {line}");
        if (lines.Count > examples)
            text.AppendLine($"      ... and {lines.Count - examples} more");
    }

    private static string FileName(string path) => path[(path.LastIndexOf('/') + 1)..];
}
