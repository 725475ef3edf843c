using Bulwark.Server.Admin;
using Bulwark.Server.Api;
using Bulwark.Server.Backends;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Bulwark.Server.OperatorConsole;

/// <summary>
/// The playground: chat with a served model, streaming. The script calls the public <c>/v1/chat/completions</c> with
/// an API key — one pasted in, or a short-lived key minted here for the chosen model
/// (<see cref="ConsoleOptions.PlaygroundKeyLifetime"/>, audited as <c>key.created</c>) — never with the console session,
/// whose cookie is not even sent outside <c>/console</c>.
/// </summary>
public static class PlaygroundPage
{
    public static void Map(RouteGroupBuilder console)
    {
        console.MapGet("/playground", (HttpContext context, ServedModels models) => ConsoleEndpoints.Page(Render(context.Session()!, models)));
        console.MapPost("/api/playground-key", async (HttpContext context, ServedModels models, KeyIssuer issuer, ConsoleOptions options, TimeProvider time) =>
        {
            var model = await AdminBody.ReadAsync(context, f => f.String("model", AdminBody.MaxText));
            if (string.IsNullOrWhiteSpace(model)) throw ApiException.Invalid("model", "model is required", "missing_required_parameter");
            if (models.List().All(m => m.Id != model))
                return Results.Json(new { error = new { message = $"no model '{model}' is served here", type = "invalid_request_error", param = "model", code = "model_not_found" } },
                    statusCode: StatusCodes.Status404NotFound);
            var session = context.Session()!;
            var issued = await issuer.CreateAsync(new KeySpec
            {
                Name = "playground " + session.KeyId, Tenant = "playground", Models = [model], ExpiresAt = time.GetUtcNow() + options.PlaygroundKeyLifetime,
            }, $"admin key {session.KeyId} (console playground)", context.RequestAborted);
            return Results.Json(new { id = issued.Record.Id, key = issued.Key, model, expires_at = issued.Record.ExpiresAt });
        });
        // The input guard's verdict on one of the playground's requests, from its audit record (the API never tells a caller).
        console.MapGet("/api/guard-verdict", async (HttpContext context, Storage.SecurityStorage storage) =>
        {
            var id = context.Request.Query["request"].ToString();
            if (id.Length is 0 or > 128) throw ApiException.Invalid("request", "request must be a request id (x-request-id) of at most 128 characters", "invalid_value");
            var found = await storage.Audit.SearchAsync(new Storage.AuditQuery { Kind = "request", RequestId = id }, limit: 1, ct: context.RequestAborted);
            if (found.Count == 0) return Results.Json(new { found = false });
            return Results.Json(new { found = true, guard = found[0].Guard is { } guard ? System.Text.Json.JsonSerializer.Deserialize<System.Text.Json.JsonElement>(guard) : (System.Text.Json.JsonElement?)null });
        }).WithMetadata(new ConsolePollAttribute());
    }

    public static Html Render(ConsoleSession session, ServedModels models) => Layout.Page("Playground", "/playground", session, Html.Of($"""
        <section id="playground" class="chat" data-mint="{ConsoleEndpoints.Prefix}/api/playground-key" data-verdict="{ConsoleEndpoints.Prefix}/api/guard-verdict">
          <form id="playground-form" class="grid" novalidate>
            <label for="pg-model">Model</label>
            <select id="pg-model" name="model">{models.List().Select(m => Html.Of($"<option>{m.Id}</option>"))}</select>
            <label for="pg-key">API key (empty: mint one for an hour)</label>
            <input id="pg-key" name="key" type="password" autocomplete="off" spellcheck="false" placeholder="bwk_…">
            <label for="pg-temperature">Temperature</label><input id="pg-temperature" name="temperature" type="number" min="0" max="2" step="0.1" value="0.7">
            <label for="pg-top-p">Top p</label><input id="pg-top-p" name="top_p" type="number" min="0.01" max="1" step="0.01" value="1">
            <label for="pg-max-tokens">Max tokens</label><input id="pg-max-tokens" name="max_tokens" type="number" min="1" max="4096" step="1" value="128">
            <label for="pg-seed">Seed (optional)</label><input id="pg-seed" name="seed" type="number" step="1">
            <label for="pg-format">Response format</label>
            <select id="pg-format" name="response_format"><option value="">text</option><option value="json_object">JSON object</option><option value="json_schema">JSON schema (below)</option></select>
            <label for="pg-schema">JSON schema (for the JSON schema format)</label><textarea id="pg-schema" name="schema" spellcheck="false" placeholder="a JSON Schema object"></textarea>
            <label for="pg-tools">Tools (a JSON array of OpenAI function tools; optional)</label><textarea id="pg-tools" name="tools" spellcheck="false" placeholder="an array of function tools, as OpenAI takes them"></textarea>
            <label for="pg-tool-choice">Tool choice</label>
            <select id="pg-tool-choice" name="tool_choice"><option value="auto">auto</option><option value="required">required</option><option value="none">none</option></select>
            <label for="pg-message">Message</label><textarea id="pg-message" name="message" required></textarea>
            <button type="submit" id="pg-send">Send</button>
          </form>
          <p class="hint" id="pg-key-note" role="status"></p>
          <div id="pg-transcript" class="transcript" aria-live="polite"></div>
          <p id="pg-stats" class="stats" role="status"></p>
          <p id="pg-guard" class="stats" role="status"></p>
        </section>
        """));
}
