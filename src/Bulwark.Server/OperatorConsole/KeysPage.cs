using System.Globalization;
using Bulwark.Server.Admin;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Bulwark.Server.OperatorConsole;

/// <summary>
/// Keys: the list with today's usage against the daily limit, and create, revoke, rotate — through
/// <see cref="KeyIssuer"/> and <see cref="CreateKeyRequest.ToSpec"/>, as <c>/admin/keys</c> does. A new key's text
/// is on the answer to its creation only.
/// </summary>
public static class KeysPage
{
    public static void Map(RouteGroupBuilder console)
    {
        console.MapGet("/keys", (HttpContext context, SecurityStorage storage, TimeProvider time) => RenderAsync(context, storage, time, null));
        console.MapPost("/keys", async (HttpContext context, KeyIssuer issuer, SecurityStorage storage, TimeProvider time) =>
        {
            var form = await ConsoleForm.ReadAsync(context);
            try
            {
                var request = new CreateKeyRequest(form.Required("name"), form.Text("tenant"), form.List("models"),
                    form.Whole("rpm", 0, long.MaxValue), form.Whole("tpm", 0, long.MaxValue), form.Whole("tpd", 0, long.MaxValue),
                    form.Whole("concurrency", 0, long.MaxValue), (int)form.Whole("priority", 0, KeySpec.MaxPriority),
                    form.Text("expires") is { } expires ? KeyExpiry.Parse(expires, time.GetUtcNow()) : null, form.Checked("admin"),
                    form.Text("guard"), form.Whole("rph", 0, long.MaxValue), form.Whole("tph", 0, long.MaxValue));
                var issued = await issuer.CreateAsync(request.ToSpec(), ConsoleAccess.Actor(context), context.RequestAborted);
                return await RenderAsync(context, storage, time, Issued("Created", issued));
            }
            catch (ArgumentException e) { return await RenderAsync(context, storage, time, Error(e.Message), StatusCodes.Status400BadRequest); }
        });
        console.MapPost("/keys/revoke", async (HttpContext context, KeyIssuer issuer, SecurityStorage storage, TimeProvider time) =>
        {
            var id = (await ConsoleForm.ReadAsync(context)).Text("id") ?? "";
            return await issuer.RevokeAsync(id, ConsoleAccess.Actor(context), context.RequestAborted)
                ? await RenderAsync(context, storage, time, Html.Of($"""<p class="notice" role="status">Key {id} revoked: every replica refuses it within a second.</p>"""))
                : await RenderAsync(context, storage, time, Error($"no key with id '{id}'"), StatusCodes.Status404NotFound);
        });
        console.MapPost("/keys/rotate", async (HttpContext context, KeyIssuer issuer, SecurityStorage storage, TimeProvider time) =>
        {
            var form = await ConsoleForm.ReadAsync(context);
            var id = form.Text("id") ?? "";
            try
            {
                var grace = form.Text("grace") is { } text ? RotationGrace.Parse(text) : TimeSpan.Zero;
                return await issuer.RotateAsync(id, ConsoleAccess.Actor(context), grace, context.RequestAborted) is { } issued
                    ? await RenderAsync(context, storage, time, Issued($"Rotated {id} into", issued))
                    : await RenderAsync(context, storage, time, Error($"no active key with id '{id}'"), StatusCodes.Status404NotFound);
            }
            catch (ArgumentException e) { return await RenderAsync(context, storage, time, Error(e.Message), StatusCodes.Status400BadRequest); }
            catch (KeyConflictException e) { return await RenderAsync(context, storage, time, Error(e.Message), StatusCodes.Status409Conflict); }
        });
    }

    private static Html Error(string message) => Html.Of($"""<p class="error" role="alert">{message}</p>""");

    private static Html Issued(string what, IssuedKey issued) => Html.Of($"""
        <div class="secret" role="status">
          <p>{what} {(issued.Record.IsAdmin ? "admin" : "API")} key <strong>{issued.Record.Id}</strong> ({issued.Record.Name}). Copy it now: it is shown only this once.</p>
          <p><code id="issued-key">{issued.Key}</code></p>
          {(issued.Replaced?.RetiresAt is { } until ? Html.Of($"<p>The old key keeps working until {Time(until)}.</p>") : Html.Empty)}
        </div>
        """);

    private static async Task<IResult> RenderAsync(HttpContext context, SecurityStorage storage, TimeProvider time, Html? message, int status = StatusCodes.Status200OK)
    {
        var now = time.GetUtcNow();
        var keys = await storage.Keys.ListAsync(context.RequestAborted);
        var usage = await storage.Audit.UsageOnAsync(now.UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture), context.RequestAborted);
        var session = context.Session()!;
        var rows = keys.OrderByDescending(k => k.CreatedAt).Select(k => Row(k, usage.GetValueOrDefault(k.Id), now, session));
        return ConsoleEndpoints.Page(Layout.Page("Keys", "/keys", session, Html.Of($"""
            {message ?? Html.Empty}
            <details class="panel"{(message is null ? Html.Empty : Html.Of($" open"))}>
              <summary>Create a key</summary>
              <form method="post" action="{ConsoleEndpoints.Prefix}/keys" class="grid" id="create-key">
                {Layout.CsrfField(session)}
                {Field("name", "Name", Html.Of($"required maxlength=\"100\""))}
                {Field("tenant", "Tenant", Html.Of($"placeholder=\"default\""))}
                {Field("models", "Models (comma-separated; empty: all)", Html.Empty)}
                {Field("rpm", "Requests/min", Number)}{Field("rph", "Requests/hour", Number)}
                {Field("tpm", "Tokens/min", Number)}{Field("tph", "Tokens/hour", Number)}{Field("tpd", "Tokens/day", Number)}
                {Field("concurrency", "Concurrent requests", Number)}
                {Field("priority", "Priority (0–9)", Html.Of($"inputmode=\"numeric\" pattern=\"[0-9]\""))}
                {Field("expires", "Expires (90m, 12h, 30d or 2027-01-01)", Html.Empty)}
                <label for="guard">Input guard</label>
                <select id="guard" name="guard"><option value="">tenant's policy</option><option>off</option><option>flag</option><option>block</option></select>
                <label for="admin">Admin key</label><input id="admin" name="admin" type="checkbox">
                <button type="submit">Create</button>
              </form>
            </details>
            <table class="keys">
              <caption>{keys.Count} keys; usage is today's (UTC), counted from the audit log</caption>
              <thead><tr><th scope="col">Id</th><th scope="col">Name</th><th scope="col">Tenant</th><th scope="col">Kind</th><th scope="col">Models</th>
                <th scope="col">Limits</th><th scope="col">Today</th><th scope="col">State</th><th scope="col">Last used</th><th scope="col">Actions</th></tr></thead>
              <tbody>{rows}</tbody>
            </table>
            """)), status);
    }

    private static readonly Html Number = Html.Of($"""inputmode="numeric" pattern="[0-9]*" """);

    /// <summary>A labelled input; <paramref name="attributes"/> are the page's own markup.</summary>
    private static Html Field(string name, string label, Html attributes) =>
        Html.Of($"""<label for="{name}">{label}</label><input id="{name}" name="{name}" {attributes}>""");

    private static Html Row(ApiKeyRecord k, DailyUsage? today, DateTimeOffset now, ConsoleSession session)
    {
        var state = k.Revoked ? "revoked" : k.IsExpired(now) ? "expired" : k.IsRetired(now) ? "retired" : k.RetiresAt is { } until ? $"retiring until {Time(until)}" : "active";
        var tokens = today is null ? 0 : today.PromptTokens + today.CompletionTokens;
        var live = state == "active" || state.StartsWith("retiring", StringComparison.Ordinal);
        return Html.Of($"""
            <tr data-key-id="{k.Id}">
              <td><code>{k.Id}</code></td><td class="name">{k.Name}</td><td>{k.Tenant}</td><td>{(k.IsAdmin ? "admin" : "api")}</td>
              <td>{(k.Models.Count == 0 ? "all" : string.Join(", ", k.Models))}</td>
              <td>{Limits(k.Limits)} · priority {k.Priority}{(k.ExpiresAt is { } e ? $" · expires {Time(e)}" : "")}</td>
              <td>{today?.Requests ?? 0} requests · {tokens}{(k.Limits.TokensPerDay > 0 ? $" of {k.Limits.TokensPerDay}" : "")} tokens</td>
              <td class="state">{state}</td><td>{(k.LastUsedAt is { } used ? Time(used) : "never")}</td>
              <td>{(live ? Actions(k, session) : Html.Empty)}</td>
            </tr>
            """);
    }

    private static Html Actions(ApiKeyRecord k, ConsoleSession session) => Html.Of($"""
        <form method="post" action="{ConsoleEndpoints.Prefix}/keys/revoke" class="inline">
          {Layout.CsrfField(session)}<input type="hidden" name="id" value="{k.Id}">
          <button type="submit" class="danger" aria-label="Revoke key {k.Id}">Revoke</button>
        </form>
        {(k.RetiresAt is null ? Html.Of($"""
        <form method="post" action="{ConsoleEndpoints.Prefix}/keys/rotate" class="inline">
          {Layout.CsrfField(session)}<input type="hidden" name="id" value="{k.Id}">
          <label for="grace-{k.Id}" class="sr-only">Grace for key {k.Id}</label>
          <input id="grace-{k.Id}" name="grace" placeholder="grace: 0, 24h" size="8">
          <button type="submit" aria-label="Rotate key {k.Id}">Rotate</button>
        </form>
        """) : Html.Empty)}
        """);

    private static string Limits(KeyLimits l)
    {
        var parts = new List<string>();
        void Add(long value, string unit) { if (value > 0) parts.Add($"{value} {unit}"); }
        Add(l.RequestsPerMinute, "req/min");
        Add(l.RequestsPerHour, "req/h");
        Add(l.TokensPerMinute, "tok/min");
        Add(l.TokensPerHour, "tok/h");
        Add(l.TokensPerDay, "tok/day");
        Add(l.MaxConcurrent, "concurrent");
        return parts.Count == 0 ? "no limits" : string.Join(", ", parts);
    }

    public static string Time(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);
}
