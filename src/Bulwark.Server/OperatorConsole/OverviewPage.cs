using Bulwark.Server.Admission;
using Bulwark.Server.Observability;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Bulwark.Server.OperatorConsole;

/// <summary>
/// Live figures of this replica. The page is a frame with one element per figure (<c>data-figure</c>); the script
/// fills them, and draws the charts, from <c>/console/api/overview</c> every two seconds, without reloading.
/// </summary>
public static class OverviewPage
{
    public static void Map(RouteGroupBuilder console)
    {
        console.MapGet("", (HttpContext context) => ConsoleEndpoints.Page(Render(context.Session()!)));
        console.MapGet("/api/overview", (HttpContext context, PrometheusExposition exposition) =>
            Results.Json(OverviewFigures.Read(exposition.Snapshot(), context.RequestServices.GetService<ServiceLevel>())))
            .WithMetadata(new ConsolePollAttribute());
    }

    private static Html Figure(string key, string label) =>
        Html.Of($"""<div class="figure"><dt>{label}</dt><dd data-figure="{key}">–</dd></div>""");

    private static Html Chart(string key, string label) =>
        Html.Of($"""<figure class="chart"><figcaption>{label}</figcaption><div data-chart="{key}" role="img" aria-label="{label}, last five minutes"></div></figure>""");

    public static Html Render(ConsoleSession session) => Layout.Page("Overview", "", session, Html.Of($"""
        <section id="overview" data-source="{ConsoleEndpoints.Prefix}/api/overview" aria-live="polite">
          <p class="hint">This replica since it started; rates over the last two seconds. Updated every two seconds.</p>
          <div class="charts">
            {Chart("requests_rate", "Requests per second")}
            {Chart("tokens_rate", "Generated tokens per second")}
          </div>
          <dl class="figures">
            {Figure("requests_rate", "Requests/s")}
            {Figure("tokens_rate", "Tokens/s")}
            {Figure("requests", "Requests (total)")}
            {Figure("generation_tokens", "Generated tokens (total)")}
            {Figure("ttft", "Time to first token p50 / p95 / p99")}
            {Figure("itl", "Inter-token latency p50 / p95 / p99")}
            {Figure("duration", "Request duration p50 / p95 / p99")}
            {Figure("queue", "Queue time p50 / p95 / p99")}
            {Figure("admission", "Running / waiting")}
            {Figure("kv", "KV cache in use")}
            {Figure("prefix", "Prefix cache hit rate")}
            {Figure("degradation", "Degradation level")}
            {Figure("isolated", "Isolated")}
          </dl>
          <h2>Refusals by reason</h2>
          <table class="tally"><tbody data-table="refusals"></tbody></table>
          <h2>Guard verdicts</h2>
          <table class="tally"><tbody data-table="guard"></tbody></table>
          <h2>Upstream health</h2>
          <table class="tally"><tbody data-table="upstreams"></tbody></table>
        </section>
        """));
}
