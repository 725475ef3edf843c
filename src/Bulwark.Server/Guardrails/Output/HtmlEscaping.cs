using System.Text;
using Bulwark.Server.Requests;
using Microsoft.Extensions.Configuration;

namespace Bulwark.Server.Guardrails.Output;

/// <summary>
/// HTML escaping of generated text for applications that put it straight into a page:
/// <c>&amp; &lt; &gt; " '</c> become <c>&amp;amp; &amp;lt; &amp;gt; &amp;quot; &amp;#39;</c>. Escaping works
/// character by character and each character's entity is emitted whole in the same piece, so on a
/// stream an entity is never split across chunks and nothing is held back.
/// </summary>
public static class HtmlEscaper
{
    public static string Escape(string text)
    {
        var i = text.AsSpan().IndexOfAny("&<>\"'");
        if (i < 0) return text;
        var output = new StringBuilder(text.Length + 16);
        output.Append(text, 0, i);
        for (; i < text.Length; i++)
        {
            var c = text[i];
            switch (c)
            {
                case '&': output.Append("&amp;"); break;
                case '<': output.Append("&lt;"); break;
                case '>': output.Append("&gt;"); break;
                case '"': output.Append("&quot;"); break;
                case '\'': output.Append("&#39;"); break;
                default: output.Append(c); break;
            }
        }
        return output.ToString();
    }
}

/// <summary>
/// <c>Bulwark:Guardrails:Output:HtmlEscape</c> (<c>true</c>: every request) and
/// <c>Bulwark:Guardrails:Output:HtmlEscapeTenants</c> (a list: only these tenants' requests).
/// Off by default: escaping changes the text clients get.
/// </summary>
public sealed record HtmlEscapeOptions(bool All, IReadOnlySet<string> Tenants)
{
    public const string Section = "Bulwark:Guardrails:Output";

    public bool Any => All || Tenants.Count > 0;

    public bool AppliesTo(string? tenant) => All || (tenant is not null && Tenants.Contains(tenant));

    public static HtmlEscapeOptions Read(IConfiguration configuration)
    {
        var section = configuration.GetSection(Section);
        var all = section["HtmlEscape"] switch
        {
            null or "" => false,
            var v when bool.TryParse(v, out var b) => b,
            var v => throw new FormatException($"{Section}:HtmlEscape must be true or false; got '{v}'"),
        };
        var tenants = section.GetSection("HtmlEscapeTenants").GetChildren().Select(c => c.Value ?? "").ToHashSet(StringComparer.Ordinal);
        if (tenants.Any(string.IsNullOrWhiteSpace)) throw new FormatException($"{Section}:HtmlEscapeTenants must list tenant names; got an empty one");
        return new HtmlEscapeOptions(all, tenants);
    }
}

/// <summary>
/// Wraps the output guard: for callers whose tenant opted in, whatever the inner guard lets through
/// is HTML-escaped. Requests asking for JSON output (<c>response_format</c> <c>json_object</c> /
/// <c>json_schema</c>) or carrying <c>tools</c> are never escaped: their text is data for a program
/// (a tool call's marker and JSON arguments) and escaping would make it unreadable.
/// </summary>
public sealed class HtmlEscapingGuard(IOutputGuard inner, HtmlEscapeOptions options) : IOutputGuard
{
    /// <summary>The guard itself when nothing is configured, so the common path pays nothing.</summary>
    public static IOutputGuard Wrap(IOutputGuard inner, HtmlEscapeOptions options) => options.Any ? new HtmlEscapingGuard(inner, options) : inner;

    public IOutputFilter? Begin() => inner.Begin();

    public IOutputFilter? Begin(Caller? caller, GenerationRequest request)
    {
        var filter = inner.Begin(caller, request);
        if (!options.AppliesTo(request.Tenant) || request.ResponseFormat is not null || request.Tools is not null) return filter;
        return new Filter(filter);
    }

    private sealed class Filter(IOutputFilter? inner) : IOutputFilter
    {
        public string Push(string text) => HtmlEscaper.Escape(inner is null ? text : inner.Push(text));

        public string Flush() => inner is null ? "" : HtmlEscaper.Escape(inner.Flush());

        public bool Blocked => inner?.Blocked ?? false;

        public int Held => inner?.Held ?? 0;

        public IReadOnlyList<string> Hits => inner?.Hits ?? [];
    }
}
