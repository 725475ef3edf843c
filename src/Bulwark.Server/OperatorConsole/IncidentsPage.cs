using Bulwark.Server.Admin;
using Bulwark.Server.Admission;
using Bulwark.Server.Incidents;
using Bulwark.Server.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Bulwark.Server.OperatorConsole;

/// <summary>
/// Incidents: block and unblock addresses, cancel a request on whichever replica serves it, isolate or resume this
/// replica, set the log level — through <see cref="IncidentControls"/> and the admin API's isolation, so each is
/// stored, audited and in force on every replica within a second.
/// </summary>
public static class IncidentsPage
{
    public static void Map(RouteGroupBuilder console)
    {
        console.MapGet("/incidents", (HttpContext context, CancellationToken _) => RenderAsync(context, null));
        console.MapPost("/incidents/block", (HttpContext context, IncidentControls controls) => ActAsync(context, async form =>
        {
            var range = await controls.BlockIpAsync(form.Required("cidr"), form.Text("reason") ?? "", ConsoleAccess.Actor(context), context.RequestAborted);
            return $"{range} blocked.";
        }));
        console.MapPost("/incidents/unblock", (HttpContext context, IncidentControls controls) => ActAsync(context, async form =>
        {
            var cidr = form.Required("cidr");
            return await controls.UnblockIpAsync(cidr, ConsoleAccess.Actor(context), context.RequestAborted) ? $"{cidr} unblocked." : throw new ArgumentException($"'{cidr}' is not blocked");
        }));
        console.MapPost("/incidents/cancel", (HttpContext context, IncidentControls controls) => ActAsync(context, async form =>
        {
            var id = form.Required("id");
            await controls.CancelRequestAsync(id, ConsoleAccess.Actor(context), context.RequestAborted);
            return $"Cancellation of {id} sent to every replica.";
        }));
        console.MapPost("/incidents/isolate", (HttpContext context, ReplicaIsolation isolation, IncidentControls controls, ReplicaIdentity replica) =>
            ActAsync(context, async form =>
            {
                await AdminEndpoints.ApplyIsolationAsync(new IsolationRequest(form.Text("reason")), true, ConsoleAccess.Actor(context), isolation, controls, replica, context.RequestAborted);
                return "This replica is isolated: new inference gets 503 and /ready fails; requests in flight finish.";
            }));
        console.MapPost("/incidents/resume", (HttpContext context, ReplicaIsolation isolation, IncidentControls controls, ReplicaIdentity replica) =>
            ActAsync(context, async _ =>
            {
                await AdminEndpoints.ApplyIsolationAsync(new IsolationRequest(), false, ConsoleAccess.Actor(context), isolation, controls, replica, context.RequestAborted);
                return "This replica takes work again.";
            }));
        console.MapPost("/incidents/log-level", (HttpContext context, IncidentControls controls) => ActAsync(context, async form =>
        {
            var text = form.Required("level");
            if (!RuntimeLogLevel.TryParse(text, out var level))
                throw new ArgumentException($"level must be one of Trace, Debug, Information, Warning, Error, Critical, None or default; got '{text}'");
            await controls.SetLogLevelAsync(level, ConsoleAccess.Actor(context), context.RequestAborted);
            return $"Log level {text} on every replica.";
        }));
    }

    private static async Task<IResult> ActAsync(HttpContext context, Func<ConsoleForm, Task<string>> act)
    {
        try
        {
            var done = await act(await ConsoleForm.ReadAsync(context));
            return await RenderAsync(context, Html.Of($"""<p class="notice" role="status">{done}</p>"""));
        }
        catch (Exception e) when (e is ArgumentException or FormatException)
        {
            return await RenderAsync(context, Html.Of($"""<p class="error" role="alert">{e.Message}</p>"""), StatusCodes.Status400BadRequest);
        }
    }

    private static async Task<IResult> RenderAsync(HttpContext context, Html? message, int status = StatusCodes.Status200OK)
    {
        var services = context.RequestServices;
        T Get<T>() where T : notnull => (T)services.GetService(typeof(T))!;
        var session = context.Session()!;
        var blocks = await Get<SecurityStorage>().IpBlocks.ListAsync(context.RequestAborted);
        var requests = await Get<ActiveRequestPublisher>().AllAsync(context.RequestAborted);
        var isolated = Get<ReplicaIsolation>().Current;
        var csrf = Layout.CsrfField(session);
        return ConsoleEndpoints.Page(Layout.Page("Incidents", "/incidents", session, Html.Of($"""
            {message ?? Html.Empty}
            <h2>Blocked addresses</h2>
            <form method="post" action="{ConsoleEndpoints.Prefix}/incidents/block" class="grid" id="block-ip">
              {csrf}
              <label for="cidr">Address or range</label><input id="cidr" name="cidr" required placeholder="203.0.113.0/24">
              <label for="block-reason">Reason</label><input id="block-reason" name="reason">
              <button type="submit" class="danger">Block</button>
            </form>
            <table class="blocks">
              <thead><tr><th scope="col">Range</th><th scope="col">Reason</th><th scope="col">Since</th><th scope="col"></th></tr></thead>
              <tbody>{blocks.Select(b => Html.Of($"""
                <tr data-cidr="{b.Cidr}"><td><code>{b.Cidr}</code></td><td class="text">{b.Reason}</td><td>{KeysPage.Time(b.CreatedAt)}</td>
                  <td><form method="post" action="{ConsoleEndpoints.Prefix}/incidents/unblock" class="inline">{csrf}<input type="hidden" name="cidr" value="{b.Cidr}">
                    <button type="submit" aria-label="Unblock {b.Cidr}">Unblock</button></form></td></tr>
                """))}</tbody>
            </table>
            <h2>Requests in flight</h2>
            <table class="requests">
              <thead><tr><th scope="col">Request</th><th scope="col">Key</th><th scope="col">Tenant</th><th scope="col">Route</th><th scope="col">Started</th><th scope="col">Replica</th><th scope="col"></th></tr></thead>
              <tbody>{requests.Select(r => Html.Of($"""
                <tr><td><code>{r.Id}</code></td><td>{r.KeyId}</td><td>{r.Tenant}</td><td class="text">{r.Route}</td><td>{KeysPage.Time(r.StartedAt)}</td><td>{r.Replica}</td>
                  <td><form method="post" action="{ConsoleEndpoints.Prefix}/incidents/cancel" class="inline">{csrf}<input type="hidden" name="id" value="{r.Id}">
                    <button type="submit" class="danger" aria-label="Cancel request {r.Id}">Cancel</button></form></td></tr>
                """))}</tbody>
            </table>
            <h2>This replica</h2>
            {(isolated is null ? Html.Of($"""
              <p>Taking work.</p>
              <form method="post" action="{ConsoleEndpoints.Prefix}/incidents/isolate" class="inline">{csrf}
                <label for="isolate-reason">Reason</label><input id="isolate-reason" name="reason">
                <button type="submit" class="danger">Isolate this replica</button></form>
              """) : Html.Of($"""
              <p class="error">Isolated since {KeysPage.Time(isolated.Since)} by {isolated.Actor}: {isolated.Reason}</p>
              <form method="post" action="{ConsoleEndpoints.Prefix}/incidents/resume" class="inline">{csrf}<button type="submit">Resume</button></form>
              """))}
            <h2>Log level</h2>
            <form method="post" action="{ConsoleEndpoints.Prefix}/incidents/log-level" class="inline">{csrf}
              <label for="level">Level on every replica</label>
              <select id="level" name="level">{new[] { "default", "Trace", "Debug", "Information", "Warning", "Error", "Critical" }.Select(l => Html.Of($"<option>{l}</option>"))}</select>
              <button type="submit">Set</button>
            </form>
            """)), status);
    }
}
