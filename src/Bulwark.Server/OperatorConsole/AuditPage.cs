using Bulwark.Server.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Bulwark.Server.OperatorConsole;

/// <summary>
/// The audit log, newest first, filtered by exact kind, key id, tenant, client address and status, a page at a time
/// (<see cref="AuditStore.SearchAsync"/>). A filter form is a GET, so a filtered view is a link an operator can share.
/// </summary>
public static class AuditPage
{
    public const int PageSize = 50;
    public const int MaxPage = 10_000;

    public static void Map(RouteGroupBuilder console) =>
        console.MapGet("/audit", async (HttpContext context, SecurityStorage storage) =>
        {
            var q = context.Request.Query;
            string? Filter(string name) => q[name].ToString().Trim() is { Length: > 0 } v ? v : null;
            var session = context.Session()!;
            if (q.Keys.FirstOrDefault(k => q[k].ToString().Length > Admin.AdminBody.MaxText) is { } tooLong)
                return Bad(session, $"{tooLong} must be at most {Admin.AdminBody.MaxText} characters");
            int? status = null;
            var page = 1;
            if (Filter("status") is { } s)
            {
                if (!int.TryParse(s, out var parsed) || parsed is < 100 or > 599) return Bad(session, $"status must be an HTTP status between 100 and 599; got '{s}'");
                status = parsed;
            }
            if (Filter("page") is { } p && (!int.TryParse(p, out page) || page is < 1 or > MaxPage)) return Bad(session, $"page must be between 1 and {MaxPage}; got '{p}'");
            var query = new AuditQuery { Kind = Filter("kind"), KeyId = Filter("key_id"), Tenant = Filter("tenant"), ClientIp = Filter("client_ip"), Status = status };
            var records = await storage.Audit.SearchAsync(query, PageSize + 1, (page - 1) * PageSize, context.RequestAborted);
            return ConsoleEndpoints.Page(Render(session, query, page, records.Take(PageSize).ToList(), more: records.Count > PageSize));
        });

    private static IResult Bad(ConsoleSession session, string message) =>
        ConsoleEndpoints.Page(Layout.Page("Audit", "/audit", session, Html.Of($"""<p class="error" role="alert">{message}</p>""")), StatusCodes.Status400BadRequest);

    private static Html Render(ConsoleSession session, AuditQuery query, int page, IReadOnlyList<AuditRecord> records, bool more)
    {
        Html Input(string name, string label, string? value) => Html.Of($"""<label for="f-{name}">{label}</label><input id="f-{name}" name="{name}" value="{value ?? ""}">""");
        string Link(int to) => $"{ConsoleEndpoints.Prefix}/audit?" + string.Join("&", new (string, string?)[]
        {
            ("kind", query.Kind), ("key_id", query.KeyId), ("tenant", query.Tenant), ("client_ip", query.ClientIp), ("status", query.Status?.ToString()), ("page", to.ToString()),
        }.Where(p => p.Item2 is not null).Select(p => $"{p.Item1}={Uri.EscapeDataString(p.Item2!)}"));
        return Layout.Page("Audit", "/audit", session, Html.Of($"""
            <form method="get" action="{ConsoleEndpoints.Prefix}/audit" class="grid" id="audit-filter">
              {Input("kind", "Kind (request, key.created, ip.blocked, …)", query.Kind)}
              {Input("key_id", "Key id", query.KeyId)}
              {Input("tenant", "Tenant", query.Tenant)}
              {Input("client_ip", "Client address", query.ClientIp)}
              {Input("status", "Status", query.Status?.ToString())}
              <button type="submit">Filter</button>
            </form>
            <table class="audit">
              <caption>Page {page}: {records.Count} records, newest first</caption>
              <thead><tr><th scope="col">Time</th><th scope="col">Kind</th><th scope="col">Key</th><th scope="col">Tenant</th><th scope="col">Model</th><th scope="col">Client</th>
                <th scope="col">Route</th><th scope="col">Status</th><th scope="col">Tokens</th><th scope="col">Reason</th><th scope="col">Guard</th><th scope="col">Detail</th></tr></thead>
              <tbody>{records.Select(r => Html.Of($"""
                <tr><td>{KeysPage.Time(r.At)}</td><td>{r.Kind}</td><td>{r.KeyId}</td><td>{r.Tenant}</td><td class="text">{r.Model}</td><td>{r.ClientIp}</td>
                  <td class="text">{r.Route}</td><td>{r.Status}</td><td>{(r.PromptTokens is null && r.CompletionTokens is null ? "" : $"{r.PromptTokens ?? 0} + {r.CompletionTokens ?? 0}")}</td>
                  <td class="text">{r.Reason}</td><td class="text">{r.Guard}</td><td class="text">{r.Detail}</td></tr>
                """))}</tbody>
            </table>
            <nav aria-label="Audit pages" class="pages">
              {(page > 1 ? Html.Of($"""<a href="{Link(page - 1)}" rel="prev">Newer</a>""") : Html.Empty)}
              {(more ? Html.Of($"""<a href="{Link(page + 1)}" rel="next">Older</a>""") : Html.Empty)}
            </nav>
            """));
    }
}
