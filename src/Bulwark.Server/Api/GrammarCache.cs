using System.Collections.Concurrent;
using Bulwark.Engine.Serving.Constraints;

namespace Bulwark.Server.Api;

/// <summary>
/// Compiled constraints by their text and the limits they were compiled under, so requests that repeat
/// a schema (the common case: an application sends the same one every time) share one grammar, and
/// through it the embedded engine's per-grammar token masks. Bounded: past <see cref="Capacity"/>
/// entries the cache starts over. A constraint that fails to compile is never cached.
/// </summary>
internal static class GrammarCache
{
    public const int Capacity = 64;

    private static readonly ConcurrentDictionary<string, Grammar> Grammars = new(StringComparer.Ordinal);

    public static Grammar GetOrCompile(string kind, string text, ConstraintLimits limits, Func<Grammar> compile)
    {
        var key = $"{kind}\0{limits}\0{text}";
        if (Grammars.TryGetValue(key, out var known)) return known;
        var grammar = compile();
        if (Grammars.Count >= Capacity) Grammars.Clear();
        return Grammars.GetOrAdd(key, grammar);
    }
}
