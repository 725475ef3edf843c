using System.CommandLine;
using System.Text.Json;
using Bulwark.Server.Admin;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;

namespace Bulwark.Cli.Commands;

/// <summary>
/// <c>bulwark keys create|list|revoke|rotate</c>: API and admin keys in the same store <c>serve</c>
/// uses. Changes reach running servers through the incident log within a second. A key's text is
/// printed once, at creation or rotation, and never stored. A rotation with <c>--grace</c> leaves the
/// old key working until a stored instant that every server checks on each request.
/// </summary>
internal static class KeysCommand
{
    public static Command Create()
    {
        var command = new Command("keys", "Create, list, revoke and rotate API keys (acts on the data directory or database serve uses).");
        command.Subcommands.Add(CreateKey());
        command.Subcommands.Add(List());
        command.Subcommands.Add(Revoke());
        command.Subcommands.Add(Rotate());
        return command;
    }

    private static Command CreateKey()
    {
        var store = new SecurityStoreOptions();
        var name = new Option<string>("--name") { Description = "What the key is for (shown in lists and audit).", Required = true };
        var tenant = new Option<string>("--tenant") { Description = "Tenant the key belongs to.", DefaultValueFactory = _ => "default" };
        var models = new Option<string?>("--models") { Description = "Comma-separated model ids the key may use (default: every model)." };
        var rpm = new Option<long>("--rpm") { Description = "Requests per minute, refilled continuously (0: no limit)." };
        var rph = new Option<long>("--rph") { Description = "Requests per UTC clock hour (0: no limit)." };
        var tpm = new Option<long>("--tpm") { Description = "Tokens per minute, prompt + max_tokens reserved up front (0: no limit)." };
        var tph = new Option<long>("--tph") { Description = "Tokens per UTC clock hour, reserved and settled like --tpm (0: no limit)." };
        var tpd = new Option<long>("--tpd") { Description = "Tokens per UTC day (0: no limit)." };
        var concurrency = new Option<long>("--concurrency") { Description = "Requests in flight at once (0: no limit)." };
        var priority = new Option<int>("--priority") { Description = $"Admission priority, 0 (lowest) to {KeySpec.MaxPriority}." };
        var expires = new Option<string?>("--expires") { Description = "Lifetime (90m, 12h, 30d) or date (2027-01-01, 2027-01-01T12:00:00Z)." };
        var admin = new Option<bool>("--admin") { Description = "An admin key: reaches only the admin API and /metrics, never inference." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object with id, key and every setting." };
        var guard = new Option<string?>("--guard") { Description = "Input guard policy of this key: off, flag or block (default: the tenant's)." };
        var url = AdminApi.UrlOption();
        var command = new Command("create", "Create a key and print it once.") { name, tenant, models, rpm, rph, tpm, tph, tpd, concurrency, priority, expires, admin, json, guard, url };
        store.AddTo(command);
        command.SetAction((r, ct) => CliRun.RunAsync(r, async output =>
        {
            var now = DateTimeOffset.UtcNow;
            var spec = new KeySpec
            {
                Name = r.GetValue(name)!,
                Tenant = r.GetValue(tenant)!,
                Models = (r.GetValue(models) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                Limits = new KeyLimits(r.GetValue(rpm), r.GetValue(tpm), r.GetValue(tpd), r.GetValue(concurrency), r.GetValue(rph), r.GetValue(tph)),
                Priority = r.GetValue(priority),
                ExpiresAt = r.GetValue(expires) is { } text ? KeyExpiry.Parse(text, now) : null,
                IsAdmin = r.GetValue(admin),
                Guard = r.GetValue(guard) is { } g ? Bulwark.Server.Requests.GuardPolicyNames.ParseForKey(g, "--guard") : null,
            };
            spec.Validate(now); // before opening (and perhaps creating) the store, or calling a server
            JsonElement issued;
            using (var server = AdminApi.From(r, url, store))
            {
                if (server is not null)
                    issued = await server.SendAsync(HttpMethod.Post, "admin/keys", new CreateKeyRequest(spec.Name, spec.Tenant, [.. spec.Models],
                        spec.Limits.RequestsPerMinute, spec.Limits.TokensPerMinute, spec.Limits.TokensPerDay, spec.Limits.MaxConcurrent, spec.Priority,
                        spec.ExpiresAt, spec.IsAdmin, spec.Guard is { } policy ? Bulwark.Server.Requests.GuardPolicyNames.Name(policy) : null,
                        spec.Limits.RequestsPerHour, spec.Limits.TokensPerHour), ct);
                else
                {
                    await using var opened = await store.OpenAsync(r, ct);
                    issued = View(await opened.Keys.CreateAsync(spec, SecurityStore.Actor, ct));
                }
            }
            PrintIssued(output, issued, r.GetValue(json), "created");
            return 0;
        }));
        return command;
    }

    private static Command List()
    {
        var store = new SecurityStoreOptions();
        var json = new Option<bool>("--json") { Description = "Print a JSON array of keys (never their text or hash)." };
        var url = AdminApi.UrlOption();
        var command = new Command("list", "List keys with their limits and state.") { json, url };
        store.AddTo(command);
        command.SetAction((r, ct) => CliRun.RunAsync(r, async output =>
        {
            // Keys as the admin API lists them, so the store and a server print alike.
            JsonElement keys;
            using (var server = AdminApi.From(r, url, store))
            {
                if (server is not null) keys = (await server.SendAsync(HttpMethod.Get, "admin/keys", null, ct)).GetProperty("data");
                else
                {
                    await using var opened = await store.OpenAsync(r, ct);
                    keys = JsonSerializer.SerializeToElement((await opened.Storage.Keys.ListAsync(ct)).Select(k => KeyView.Of(k, null)));
                }
            }
            if (r.GetValue(json))
            {
                output.WriteLine(keys.GetRawText());
                return 0;
            }
            if (keys.GetArrayLength() == 0)
            {
                output.WriteLine("no keys (create one with: bulwark keys create --name NAME)");
                return 0;
            }
            PrintTable(output, keys, DateTimeOffset.UtcNow);
            return 0;
        }));
        return command;
    }

    private static Command Revoke()
    {
        var store = new SecurityStoreOptions();
        var id = new Argument<string>("id") { Description = "The key's public id (the 12 characters after bwk_ or bwa_)." };
        var url = AdminApi.UrlOption();
        var command = new Command("revoke", "Revoke a key (also ends a rotated key's grace at once); every running server refuses it within a second.") { id, url };
        store.AddTo(command);
        command.SetAction((r, ct) => CliRun.RunAsync(r, async output =>
        {
            var keyId = KeyId(r.GetValue(id)!);
            using (var server = AdminApi.From(r, url, store))
            {
                if (server is not null) await server.SendAsync(HttpMethod.Post, $"admin/keys/{Uri.EscapeDataString(keyId)}/revoke", null, ct);
                else
                {
                    await using var opened = await store.OpenAsync(r, ct);
                    if (!await opened.Keys.RevokeAsync(keyId, SecurityStore.Actor, ct)) throw new CliException($"no key with id '{keyId}'");
                }
            }
            output.WriteLine($"revoked {keyId}");
            return 0;
        }));
        return command;
    }

    private static Command Rotate()
    {
        var store = new SecurityStoreOptions();
        var id = new Argument<string>("id") { Description = "The key's public id." };
        var grace = new Option<string?>("--grace")
        {
            Description = "How long the old key keeps working beside the new one, on every server: 0 (the default: revoked at once) " +
                          $"or a duration such as 90m, 24h, 7d, at most {RotationGrace.Format(RotationGrace.Max)}.",
        };
        var json = new Option<bool>("--json") { Description = "Print the new key as one JSON object (rotated_from: the old key's id and end of grace)." };
        var url = AdminApi.UrlOption();
        var command = new Command("rotate", "Issue a new key with the same settings; revoke the old one at once, or after --grace.") { id, grace, json, url };
        store.AddTo(command);
        command.SetAction((r, ct) => CliRun.RunAsync(r, async output =>
        {
            var keyId = KeyId(r.GetValue(id)!);
            var graceText = r.GetValue(grace);
            var span = graceText is null ? TimeSpan.Zero : RotationGrace.Parse(graceText); // before opening the store or calling a server
            JsonElement issued;
            using (var server = AdminApi.From(r, url, store))
            {
                if (server is not null)
                    issued = await server.SendAsync(HttpMethod.Post, $"admin/keys/{Uri.EscapeDataString(keyId)}/rotate",
                        graceText is null ? null : new RotateKeyRequest(graceText), ct);
                else
                {
                    await using var opened = await store.OpenAsync(r, ct);
                    issued = View(await opened.Keys.RotateAsync(keyId, SecurityStore.Actor, span, ct) ?? throw new CliException($"no active key with id '{keyId}'"));
                }
            }
            PrintIssued(output, issued, r.GetValue(json), $"rotated {keyId} into");
            if (!r.GetValue(json) && issued.TryGetProperty("rotated_from", out var old) && Instant(old, "retires_at") is { } until)
                output.WriteLine($"The old key {keyId} keeps working until {Utc(until)} (grace {RotationGrace.Format(span)}); then every server refuses it.");
            return 0;
        }));
        return command;
    }

    private static void PrintTable(TextWriter output, JsonElement keys, DateTimeOffset now)
    {
        var states = keys.EnumerateArray().Select(k => State(k, now)).ToList();
        var width = Math.Max("STATE".Length, states.Max(s => s.Length));
        output.WriteLine($"{"ID",-12}  {"KIND",-5}  {"STATE".PadRight(width)}  {"TENANT",-12}  {"NAME",-20}  {"RPM",6}  {"RPH",7}  {"TPM",8}  {"TPH",9}  {"TPD",10}  {"CONC",4}  P  MODELS");
        foreach (var (k, state) in keys.EnumerateArray().Zip(states))
        {
            var models = k.GetProperty("models").EnumerateArray().Select(m => m.GetString()).ToList();
            output.WriteLine($"{k.GetProperty("id").GetString(),-12}  {(k.GetProperty("admin").GetBoolean() ? "admin" : "api"),-5}  {state.PadRight(width)}  " +
                             $"{Clip(k.GetProperty("tenant").GetString()!, 12),-12}  {Clip(k.GetProperty("name").GetString()!, 20),-20}  " +
                             $"{Limit(k, "rpm"),6}  {Limit(k, "rph"),7}  {Limit(k, "tpm"),8}  {Limit(k, "tph"),9}  {Limit(k, "tokens_per_day"),10}  " +
                             $"{Limit(k, "concurrency"),4}  {k.GetProperty("priority").GetInt32()}  {(models.Count == 0 ? "*" : string.Join(',', models))}");
        }
    }

    /// <summary>active, revoked, expired, "retiring until …" (rotated, its grace running) or retired (its grace over).</summary>
    private static string State(JsonElement key, DateTimeOffset now)
    {
        if (key.GetProperty("revoked").GetBoolean()) return "revoked";
        if (Instant(key, "expires_at") <= now) return "expired";
        return Instant(key, "retires_at") switch
        {
            { } at when at <= now => "retired",
            { } at => "retiring until " + Utc(at),
            null => "active",
        };
    }

    private static DateTimeOffset? Instant(JsonElement key, string field) =>
        key.TryGetProperty(field, out var value) && value.ValueKind == JsonValueKind.String ? value.GetDateTimeOffset() : null;

    private static string Utc(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>A new key as the admin API answers it, so keys made through the store and through a server print alike.</summary>
    private static JsonElement View(IssuedKey issued) => JsonSerializer.SerializeToElement(KeyView.Of(issued));

    private static void PrintIssued(TextWriter output, JsonElement view, bool json, string verb)
    {
        if (json)
        {
            output.WriteLine(view.GetRawText());
            return;
        }
        var admin = view.GetProperty("admin").GetBoolean();
        output.WriteLine($"{verb} {(admin ? "admin" : "API")} key {view.GetProperty("id").GetString()} " +
                         $"(name '{view.GetProperty("name").GetString()}', tenant '{view.GetProperty("tenant").GetString()}')");
        output.WriteLine(view.GetProperty("key").GetString());
        output.WriteLine("Store it now: it is shown only this once (only its HMAC is kept).");
        output.WriteLine(admin
            ? "Use it: curl -H \"Authorization: Bearer $BULWARK_ADMIN_KEY\" http://127.0.0.1:8000/admin/keys"
            : "Use it: curl -H \"Authorization: Bearer $KEY\" http://127.0.0.1:8000/v1/models");
    }

    /// <summary>Accepts the id alone or, forgivingly, a whole key (only its id part is used; nothing is echoed).</summary>
    private static string KeyId(string text) =>
        ApiKeyFormat.TryParse(text, out var id, out _) ? id.ToString() : text.Trim();

    /// <summary>A limit as the table shows it: "-" for none (and for a field a server of an older release does not send).</summary>
    private static string Limit(JsonElement key, string field) =>
        key.TryGetProperty(field, out var value) && value.GetInt64() is var n and not 0 ? n.ToString(System.Globalization.CultureInfo.InvariantCulture) : "-";

    private static string Clip(string text, int width) => text.Length <= width ? text : text[..(width - 1)] + "…";
}
