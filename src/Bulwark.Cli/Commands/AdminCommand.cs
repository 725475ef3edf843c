using System.CommandLine;
using System.Text.Json;
using Bulwark.Server.Admin;
using Bulwark.Server.Audit;
using Bulwark.Server.Incidents;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;

namespace Bulwark.Cli.Commands;

/// <summary>
/// <c>bulwark admin ...</c>: incident controls. With <c>--url</c> (and an admin key in
/// <c>BULWARK_ADMIN_KEY</c>) each acts through a running server's admin API; without it, IP blocks,
/// cancels and the log level are written straight to the shared store's incident log. Either way
/// every running server applies them within a second. Listing active requests always asks a
/// running server (they live in its memory).
/// </summary>
internal static class AdminCommand
{
    public static Command Create()
    {
        var command = new Command("admin", "Incident controls: block IPs, list and cancel requests, set the log level, read the audit log.");
        command.Subcommands.Add(BlockIp());
        command.Subcommands.Add(UnblockIp());
        command.Subcommands.Add(IpBlocks());
        command.Subcommands.Add(Requests());
        command.Subcommands.Add(Cancel());
        command.Subcommands.Add(LogLevelCommand());
        command.Subcommands.Add(Isolation(isolate: true));
        command.Subcommands.Add(Isolation(isolate: false));
        command.Subcommands.Add(Audit());
        command.Subcommands.Add(FlushPrefixCache());
        return command;
    }

    private static Command FlushPrefixCache()
    {
        var url = AdminApi.UrlOption(required: true);
        var tenant = new Option<string?>("--tenant") { Description = "Only this tenant's cached blocks; default: every tenant's." };
        var command = new Command("flush-cache",
            $"Drop the prompt blocks a server's engines cached for a tenant (or everyone), so no later request reuses them, and clear their memory (needs --url and ${AdminApi.KeyVariable}; that server only).")
        {
            url, tenant,
        };
        command.SetAction((r, ct) => CliRun.RunAsync(r, async output =>
        {
            using var server = AdminApi.From(r, url)!;
            var answer = await server.SendAsync(HttpMethod.Post, "admin/prefix-cache/flush", new PrefixCacheFlushRequest(r.GetValue(tenant)), ct);
            var who = r.GetValue(tenant) is { } t ? $"tenant {t}" : "every tenant";
            output.WriteLine($"{answer.GetProperty("blocks").GetInt32()} cached blocks of {who} dropped");
            return 0;
        }));
        return command;
    }

    private static Command BlockIp()
    {
        var store = new SecurityStoreOptions();
        var cidr = new Argument<string>("cidr") { Description = "An address or range: 203.0.113.7, 203.0.113.0/24, 2001:db8::/32." };
        var reason = new Option<string>("--reason") { Description = "Why (kept with the block and in the audit log).", DefaultValueFactory = _ => "" };
        var url = AdminApi.UrlOption();
        var command = new Command("block-ip", "Refuse every request from an address or range, on every server, within a second.") { cidr, reason, url };
        store.AddTo(command);
        command.SetAction((r, ct) => CliRun.RunAsync(r, async output =>
        {
            string range;
            using (var server = AdminApi.From(r, url, store))
            {
                if (server is not null)
                    range = (await server.SendAsync(HttpMethod.Post, "admin/ip-blocks", new { cidr = r.GetValue(cidr), reason = r.GetValue(reason) }, ct))
                        .GetProperty("cidr").GetString()!;
                else
                {
                    await using var opened = await store.OpenAsync(r, ct);
                    range = await opened.Incidents.BlockIpAsync(r.GetValue(cidr)!, r.GetValue(reason)!, SecurityStore.Actor, ct);
                }
            }
            output.WriteLine($"blocked {range}");
            return 0;
        }));
        return command;
    }

    private static Command UnblockIp()
    {
        var store = new SecurityStoreOptions();
        var cidr = new Argument<string>("cidr") { Description = "A blocked address or range, as blocked." };
        var url = AdminApi.UrlOption();
        var command = new Command("unblock-ip", "Lift a block.") { cidr, url };
        store.AddTo(command);
        command.SetAction((r, ct) => CliRun.RunAsync(r, async output =>
        {
            var text = r.GetValue(cidr)!;
            using (var server = AdminApi.From(r, url, store))
            {
                if (server is not null) await server.SendAsync(HttpMethod.Post, "admin/ip-blocks/remove", new { cidr = text }, ct);
                else
                {
                    await using var opened = await store.OpenAsync(r, ct);
                    if (!await opened.Incidents.UnblockIpAsync(text, SecurityStore.Actor, ct)) throw new CliException($"'{text}' is not blocked");
                }
            }
            output.WriteLine($"unblocked {text}");
            return 0;
        }));
        return command;
    }

    private static Command IpBlocks()
    {
        var store = new SecurityStoreOptions();
        var json = new Option<bool>("--json") { Description = "Print a JSON array." };
        var url = AdminApi.UrlOption();
        var command = new Command("ip-blocks", "List blocked addresses and ranges.") { json, url };
        store.AddTo(command);
        command.SetAction((r, ct) => CliRun.RunAsync(r, async output =>
        {
            List<(string Cidr, string Reason, DateTimeOffset CreatedAt)> blocks;
            using (var server = AdminApi.From(r, url, store))
            {
                if (server is not null)
                    blocks = [.. (await server.SendAsync(HttpMethod.Get, "admin/ip-blocks", null, ct)).GetProperty("data").EnumerateArray()
                        .Select(b => (b.GetProperty("cidr").GetString()!, b.GetProperty("reason").GetString() ?? "", b.GetProperty("created_at").GetDateTimeOffset()))];
                else
                {
                    await using var opened = await store.OpenAsync(r, ct);
                    blocks = [.. (await opened.Storage.IpBlocks.ListAsync(ct)).Select(b => (b.Cidr, b.Reason, b.CreatedAt))];
                }
            }
            if (r.GetValue(json))
                output.WriteLine(JsonSerializer.Serialize(blocks.Select(b => new { cidr = b.Cidr, reason = b.Reason, created_at = b.CreatedAt })));
            else if (blocks.Count == 0) output.WriteLine("no blocked addresses");
            else foreach (var b in blocks) output.WriteLine($"{b.Cidr,-43}  {b.CreatedAt:u}  {b.Reason}");
            return 0;
        }));
        return command;
    }

    private static Command Requests()
    {
        var url = AdminApi.UrlOption(required: true);
        var json = new Option<bool>("--json") { Description = "Print the server's JSON answer." };
        var command = new Command("requests", $"List the requests every server sharing the store is serving, as one server sees them (needs --url and ${AdminApi.KeyVariable}).") { url, json };
        command.SetAction((r, ct) => CliRun.RunAsync(r, async output =>
        {
            using var server = AdminApi.From(r, url)!;
            var answer = await server.SendAsync(HttpMethod.Get, "admin/requests", null, ct);
            if (r.GetValue(json))
            {
                output.WriteLine(answer.GetRawText());
                return 0;
            }
            var rows = answer.GetProperty("data");
            if (rows.GetArrayLength() == 0) output.WriteLine("no active requests");
            foreach (var row in rows.EnumerateArray())
                output.WriteLine($"{row.GetProperty("id").GetString(),-24}  {row.GetProperty("key_id").GetString(),-12}  {row.GetProperty("tenant").GetString(),-12}  " +
                                 $"{row.GetProperty("started_at").GetDateTimeOffset():u}  {row.GetProperty("replica").GetString()}  {row.GetProperty("route").GetString()}");
            return 0;
        }));
        return command;
    }

    private static Command Cancel()
    {
        var store = new SecurityStoreOptions();
        var id = new Argument<string>("id") { Description = "Request id (x-request-id; see `bulwark admin requests`)." };
        var url = AdminApi.UrlOption();
        var command = new Command("cancel", "Cancel a request on whichever server serves it, within a second.") { id, url };
        store.AddTo(command);
        command.SetAction((r, ct) => CliRun.RunAsync(r, async output =>
        {
            var requestId = r.GetValue(id)!.Trim();
            if (requestId.Length is 0 or > 200 || requestId.Any(char.IsControl))
                throw new CliException($"request id must be 1 to 200 printable characters; got '{requestId}'");
            using (var server = AdminApi.From(r, url, store))
            {
                if (server is not null) await server.SendAsync(HttpMethod.Post, $"admin/requests/{Uri.EscapeDataString(requestId)}/cancel", null, ct);
                else
                {
                    await using var opened = await store.OpenAsync(r, ct);
                    await opened.Incidents.CancelRequestAsync(requestId, SecurityStore.Actor, ct);
                }
            }
            output.WriteLine($"cancel of {requestId} sent to every server");
            return 0;
        }));
        return command;
    }

    private static Command LogLevelCommand()
    {
        var store = new SecurityStoreOptions();
        var level = new Argument<string>("level") { Description = "Trace, Debug, Information, Warning, Error, Critical, None, or default (back to configuration)." };
        var url = AdminApi.UrlOption();
        var command = new Command("log-level", "Set the log level of every running server, within a second.") { level, url };
        store.AddTo(command);
        command.SetAction((r, ct) => CliRun.RunAsync(r, async output =>
        {
            var text = r.GetValue(level)!;
            if (!RuntimeLogLevel.TryParse(text, out var parsed))
                throw new CliException($"level must be one of Trace, Debug, Information, Warning, Error, Critical, None or default; got '{text}'");
            using (var server = AdminApi.From(r, url, store))
            {
                if (server is not null) await server.SendAsync(HttpMethod.Put, "admin/log-level", new { level = parsed?.ToString() ?? "default" }, ct);
                else
                {
                    await using var opened = await store.OpenAsync(r, ct);
                    await opened.Incidents.SetLogLevelAsync(parsed, SecurityStore.Actor, ct);
                }
            }
            output.WriteLine($"log level set to {parsed?.ToString() ?? "default (configuration)"} on every server");
            return 0;
        }));
        return command;
    }

    private static Command Isolation(bool isolate)
    {
        var store = new SecurityStoreOptions();
        var reason = new Option<string>("--reason") { Description = "Why (kept in the audit log and shown by /ready).", DefaultValueFactory = _ => "" };
        var replica = new Option<string?>("--replica") { Description = "The replica to act on (an id from `bulwark admin requests` or GET /admin/isolation); default: the server --url reaches." };
        var all = new Option<bool>("--all-replicas") { Description = "Every replica sharing the store, within a second." };
        var url = AdminApi.UrlOption();
        var command = isolate
            ? new Command("isolate", "Isolate a replica for an incident: it refuses new inference with 503 while requests in flight finish, and /ready fails so a load balancer drains it.")
            : new Command("resume", "End an isolation: the replica takes inference requests again and /ready passes.");
        command.Options.Add(url);
        command.Options.Add(replica);
        command.Options.Add(all);
        if (isolate) command.Options.Add(reason);
        store.AddTo(command);
        command.SetAction((r, ct) => CliRun.RunAsync(r, async output =>
        {
            if (r.GetValue(all) && r.GetValue(replica) is not null) throw new CliException("give --replica or --all-replicas, not both");
            var why = isolate ? r.GetValue(reason)! : "";
            using (var server = AdminApi.From(r, url, store))
            {
                if (server is not null)
                {
                    var answer = await server.SendAsync(HttpMethod.Post, isolate ? "admin/isolate" : "admin/resume",
                        new IsolationRequest(why, r.GetValue(replica), r.GetValue(all)), ct);
                    var target = answer.GetProperty("target").GetString();
                    output.WriteLine(target == IsolationCommand.AllReplicas
                        ? $"{(isolate ? "isolation" : "resume")} sent to every replica"
                        : target == answer.GetProperty("replica").GetString()
                            ? $"replica {target} {(isolate ? "isolated" : "resumed")}"
                            : $"{(isolate ? "isolation" : "resume")} sent to replica {target}");
                    return 0;
                }
                var targetId = r.GetValue(all) ? IsolationCommand.AllReplicas : r.GetValue(replica)
                    ?? throw new CliException("without --url, name the replica with --replica ID or give --all-replicas");
                await using var opened = await store.OpenAsync(r, ct);
                try { await opened.Incidents.AnnounceIsolationAsync(isolate, targetId, why, SecurityStore.Actor, ct); }
                catch (ArgumentException e) { throw new CliException(e.Message); }
                output.WriteLine($"{(isolate ? "isolation" : "resume")} sent to {(targetId == IsolationCommand.AllReplicas ? "every replica" : "replica " + targetId)}");
            }
            return 0;
        }));
        return command;
    }

    private static Command Audit()
    {
        var store = new SecurityStoreOptions();
        var limit = new Option<int>("--limit") { Description = "How many records, newest first (1 to 10000).", DefaultValueFactory = _ => 50 };
        var kind = new Option<string?>("--kind") { Description = "Only one kind: request, key.created, key.revoked, key.rotated, ip.blocked, ..." };
        var json = new Option<bool>("--json") { Description = "Print a JSON array." };
        var url = AdminApi.UrlOption();
        var command = new Command("audit", "Show the newest audit records.") { limit, kind, json, url };
        store.AddTo(command);
        command.SetAction((r, ct) => CliRun.RunAsync(r, async output =>
        {
            var n = r.GetValue(limit);
            if (n is < 1 or > AdminEndpoints.MaxAuditLimit) throw new CliException($"--limit must be between 1 and {AdminEndpoints.MaxAuditLimit}; got {n}");
            IReadOnlyList<AuditRecord> records;
            using (var server = AdminApi.From(r, url, store))
            {
                if (server is not null)
                {
                    var query = $"admin/audit?limit={n}" + (r.GetValue(kind) is { } k ? "&kind=" + Uri.EscapeDataString(k) : "");
                    records = (await server.SendAsync(HttpMethod.Get, query, null, ct)).GetProperty("data").Deserialize<AuditRecord[]>(JsonSerializerOptions.Web)!;
                }
                else
                {
                    await using var opened = await store.OpenAsync(r, ct);
                    records = await opened.Storage.Audit.ReadRecentAsync(n, r.GetValue(kind), ct);
                }
            }
            if (r.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(records));
                return 0;
            }
            foreach (var a in records)
                output.WriteLine(a.Kind == AuditRecord.RequestKind
                    ? $"{a.At:u}  request  {a.Status}  {a.Route}  key={a.KeyId ?? "-"} tenant={a.Tenant ?? "-"} model={a.Model ?? "-"} ip={a.ClientIp} " +
                      $"tokens={a.PromptTokens ?? 0}+{a.CompletionTokens ?? 0} {a.LatencyMicroseconds}µs{(a.Reason is null ? "" : " reason=" + a.Reason)}"
                    : $"{a.At:u}  {a.Kind}  key={a.KeyId ?? "-"}  {a.Detail}");
            return 0;
        }));
        return command;
    }
}
