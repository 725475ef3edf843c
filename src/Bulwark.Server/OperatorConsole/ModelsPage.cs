using Bulwark.Server.Admin;
using Bulwark.Server.Models;
using Bulwark.Server.Requests;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Bulwark.Server.OperatorConsole;

/// <summary>
/// Models: registered models with their versions, signature and quantization-gate state (<see cref="ModelListing"/>,
/// as <c>GET /admin/models</c>), what is loaded, loading and unloading, switching the serving version or rolling back — through
/// <see cref="ModelLifecycle"/>, which audits and announces the change to every replica.
/// </summary>
public static class ModelsPage
{
    public static void Map(RouteGroupBuilder console)
    {
        console.MapGet("/models", (HttpContext context, ModelLifecycle lifecycle) => Render(context, lifecycle, null));
        console.MapPost("/models/use", (HttpContext context, ModelLifecycle lifecycle) => ActAsync(context, lifecycle, async (form, keyId) =>
        {
            var (name, version) = (form.Required("name"), form.Required("version"));
            var (serving, _) = await lifecycle.UseAsync(name, version, keyId, context.RequestAborted);
            return $"{name} now serves {serving.Info.Registered?.Version ?? version}.";
        }));
        console.MapPost("/models/load", (HttpContext context, ModelLifecycle lifecycle) => ActAsync(context, lifecycle, async (form, keyId) =>
        {
            var model = await lifecycle.LoadAsync(form.Required("name"), form.Text("version"), keyId, context.RequestAborted);
            return $"{model.Id} loaded ({model.Info.Registered?.Version ?? "?"}).";
        }));
        console.MapPost("/models/unload", (HttpContext context, ModelLifecycle lifecycle) => ActAsync(context, lifecycle, async (form, keyId) =>
        {
            var removed = await lifecycle.UnloadAsync(form.Required("name"), keyId, context.RequestAborted);
            return $"{removed.Id} unloaded.";
        }));
        console.MapPost("/models/rollback", (HttpContext context, ModelLifecycle lifecycle) => ActAsync(context, lifecycle, async (form, keyId) =>
        {
            var name = form.Required("name");
            var (serving, replaced) = await lifecycle.RollbackAsync(name, keyId, context.RequestAborted);
            return $"{name} rolled back from {replaced?.Info.Registered?.Version ?? "?"} to {serving.Info.Registered?.Version ?? "?"}.";
        }));
    }

    private static async Task<IResult> ActAsync(HttpContext context, ModelLifecycle lifecycle, Func<ConsoleForm, string, Task<string>> act)
    {
        try
        {
            var done = await act(await ConsoleForm.ReadAsync(context), context.Session()!.KeyId);
            return Render(context, lifecycle, Html.Of($"""<p class="notice" role="status">{done}</p>"""));
        }
        catch (ApiException e) { return Render(context, lifecycle, Html.Of($"""<p class="error" role="alert">{e.Message}</p>"""), e.Status); }
        catch (ArgumentException e) { return Render(context, lifecycle, Html.Of($"""<p class="error" role="alert">{e.Message}</p>"""), StatusCodes.Status400BadRequest); }
    }

    private static IResult Render(HttpContext context, ModelLifecycle lifecycle, Html? message, int status = StatusCodes.Status200OK)
    {
        var session = context.Session()!;
        var listing = ModelListing.Of(lifecycle);
        return ConsoleEndpoints.Page(Layout.Page("Models", "/models", session, Html.Of($"""
            {message ?? Html.Empty}
            <h2>Loaded on this replica</h2>
            <table class="loaded">
              <thead><tr><th scope="col">Model</th><th scope="col">Version</th><th scope="col">Origin</th><th scope="col">Default</th><th scope="col">In flight</th><th scope="col">Memory</th><th scope="col">Loaded</th><th scope="col"></th></tr></thead>
              <tbody>{listing.Loaded.Select(m => Html.Of($"""
                <tr data-loaded="{m.Id}"><td class="name">{m.Id}</td><td>{m.Version ?? "–"}</td><td class="text">{m.Origin}</td><td>{(m.Default ? "yes" : "")}</td><td>{m.InFlight}</td>
                <td>{ModelLifecycle.Size(m.MemoryBytes)}</td><td>{KeysPage.Time(m.LoadedAt)}</td>
                <td><form method="post" action="{ConsoleEndpoints.Prefix}/models/unload" class="inline">{Layout.CsrfField(session)}<input type="hidden" name="name" value="{m.Id}">
                  <button type="submit" class="danger" aria-label="Unload {m.Id}">Unload</button></form></td></tr>
                """))}</tbody>
            </table>
            <p class="hint">Memory: {ModelLifecycle.Size(listing.Memory.UsedBytes)}{(listing.Memory.BudgetBytes is { } budget ? $" of {ModelLifecycle.Size(budget)}" : "")}.</p>
            <h2>Registered</h2>
            {listing.Data.Select(m => Registered(m, session, listing.Loaded.Any(l => l.Id == m.Name)))}
            """)), status);
    }

    private static Html Registered(RegisteredModelView m, ConsoleSession session, bool loaded) => Html.Of($"""
        <section class="panel" data-model="{m.Name}">
          <h3>{m.Name}</h3>
          {(loaded ? Html.Empty : Html.Of($"""
          <form method="post" action="{ConsoleEndpoints.Prefix}/models/load" class="inline">{Layout.CsrfField(session)}<input type="hidden" name="name" value="{m.Name}">
            <button type="submit" aria-label="Load {m.Name}">Load {m.Current ?? "latest"}</button></form>
          """))}
          <p>Serving: <strong class="current">{m.Current ?? "none"}</strong>{(m.History.Count > 0 ? $" (earlier: {string.Join(", ", m.History)})" : "")}</p>
          <table>
            <thead><tr><th scope="col">Version</th><th scope="col">Format</th><th scope="col">Architecture</th><th scope="col">Quantization</th><th scope="col">Parent</th>
              <th scope="col">Files</th><th scope="col">Size</th><th scope="col">Created</th><th scope="col">Signed</th><th scope="col">Quantization gate</th><th scope="col">Use</th></tr></thead>
            <tbody>{m.Versions.Select(v => Html.Of($"""
              <tr><td>{v.Version}</td><td>{v.Format}</td><td>{v.Architecture ?? "–"}</td><td>{v.Quantization ?? "–"}</td><td>{v.Parent ?? "–"}</td>
                <td>{v.Files}</td><td>{ModelLifecycle.Size(v.Bytes)}</td><td>{KeysPage.Time(v.CreatedAt)}</td><td>{(v.Signed ? "signed" : "unsigned")}</td><td>{v.Gate}</td>
                <td>{(v.Version == m.Current ? Html.Of($"serving") : Html.Of($"""
                  <form method="post" action="{ConsoleEndpoints.Prefix}/models/use" class="inline">
                    {Layout.CsrfField(session)}<input type="hidden" name="name" value="{m.Name}"><input type="hidden" name="version" value="{v.Version}">
                    <button type="submit" aria-label="Serve {m.Name} {v.Version}">Use</button>
                  </form>
                  """))}</td></tr>
              """))}</tbody>
          </table>
          {(m.History.Count > 0 ? Html.Of($"""
          <form method="post" action="{ConsoleEndpoints.Prefix}/models/rollback" class="inline">
            {Layout.CsrfField(session)}<input type="hidden" name="name" value="{m.Name}">
            <button type="submit" class="danger" aria-label="Roll {m.Name} back to {m.History[^1]}">Roll back to {m.History[^1]}</button>
          </form>
          """) : Html.Empty)}
        </section>
        """);
}
