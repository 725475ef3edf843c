using Bulwark.Server.Observability;
using Bulwark.Server.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Bulwark.Server.OperatorConsole;

/// <summary>
/// The input guard: verdicts by decision and hits by rule since this replica started (the figures of <c>/metrics</c>),
/// and the newest requests it scanned with their verdicts, from the audit log (rule ids and scores, never text).
/// </summary>
public static class GuardPage
{
    public const int Recent = 50;

    public static void Map(RouteGroupBuilder console) =>
        console.MapGet("/guard", async (HttpContext context, PrometheusExposition exposition, SecurityStorage storage) =>
        {
            var figures = OverviewFigures.Read(exposition.Snapshot(), null);
            var recent = await storage.Audit.SearchAsync(new AuditQuery { GuardedOnly = true }, Recent, 0, context.RequestAborted);
            Html Tally(IReadOnlyDictionary<string, double> counts, string what) => counts.Count == 0
                ? Html.Of($"<tr><td>none yet</td><td></td></tr>")
                : Html.Join(counts.OrderByDescending(c => c.Value).Select(c => Html.Of($"""<tr><th scope="row">{c.Key}</th><td data-{what}="{c.Key}">{c.Value}</td></tr>""")));
            return ConsoleEndpoints.Page(Layout.Page("Guard", "/guard", context.Session()!, Html.Of($"""
                <p class="hint">Counts are this replica's since it started; the requests are every replica's, newest first. See docs/guardrails.md.</p>
                <h2>Verdicts</h2>
                <table class="tally verdicts"><tbody>{Tally(figures.GuardVerdicts, "verdict")}</tbody></table>
                <h2>Rule hits</h2>
                <table class="tally rules"><tbody>{Tally(figures.GuardRuleHits, "rule")}</tbody></table>
                <h2>Recent scanned requests</h2>
                <table class="guarded">
                  <thead><tr><th scope="col">Time</th><th scope="col">Key</th><th scope="col">Tenant</th><th scope="col">Model</th><th scope="col">Status</th><th scope="col">Verdict</th></tr></thead>
                  <tbody>{recent.Select(r => Html.Of($"""
                    <tr><td>{KeysPage.Time(r.At)}</td><td>{r.KeyId}</td><td>{r.Tenant}</td><td class="text">{r.Model}</td><td>{r.Status}</td><td class="text"><code>{r.Guard}</code></td></tr>
                    """))}</tbody>
                </table>
                """)));
        });
}
