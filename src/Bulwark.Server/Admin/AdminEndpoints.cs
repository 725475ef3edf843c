using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Bulwark.Server.Admission;
using Bulwark.Server.Api;
using Bulwark.Server.Audit;
using Bulwark.Server.Incidents;
using Bulwark.Server.Redaction;
using Bulwark.Server.Requests;
using Bulwark.Server.Security;
using Bulwark.Server.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Bulwark.Server.Admin;

/// <summary>Body of <c>POST /admin/keys</c>.</summary>
public sealed record CreateKeyRequest(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("tenant")] string? Tenant = null,
    [property: JsonPropertyName("models")] string[]? Models = null,
    [property: JsonPropertyName("rpm")] long Rpm = 0,
    [property: JsonPropertyName("tpm")] long Tpm = 0,
    [property: JsonPropertyName("tokens_per_day")] long TokensPerDay = 0,
    [property: JsonPropertyName("concurrency")] long Concurrency = 0,
    [property: JsonPropertyName("priority")] int Priority = 0,
    [property: JsonPropertyName("expires_at")] DateTimeOffset? ExpiresAt = null,
    [property: JsonPropertyName("admin")] bool Admin = false,
    [property: JsonPropertyName("guard")] string? Guard = null,
    [property: JsonPropertyName("rph")] long Rph = 0,
    [property: JsonPropertyName("tph")] long Tph = 0)
{
    /// <summary>The body as the server reads it: strictly typed (no numbers in strings), every failure a 400 naming the field.</summary>
    public static CreateKeyRequest Read(JsonFields f) => new(
        f.String("name", AdminBody.MaxText) ?? "", f.String("tenant", AdminBody.MaxText), ReadModels(f),
        f.Integer("rpm", 0, long.MaxValue) ?? 0, f.Integer("tpm", 0, long.MaxValue) ?? 0, f.Integer("tokens_per_day", 0, long.MaxValue) ?? 0,
        f.Integer("concurrency", 0, long.MaxValue) ?? 0, (int)(f.Integer("priority", 0, KeySpec.MaxPriority) ?? 0), ReadExpiry(f),
        f.Boolean("admin") ?? false, f.String("guard", AdminBody.MaxText),
        f.Integer("rph", 0, long.MaxValue) ?? 0, f.Integer("tph", 0, long.MaxValue) ?? 0);

    /// <summary>The key this request asks for (the admin API's and the console's), checked by <see cref="KeyIssuer.CreateAsync"/>.</summary>
    /// <exception cref="ArgumentException">The guard policy is not one of off, flag, block.</exception>
    public KeySpec ToSpec() => new()
    {
        Name = Name ?? "", Tenant = Tenant ?? "default", Models = Models ?? [], Priority = Priority,
        Limits = new KeyLimits(Rpm, Tpm, TokensPerDay, Concurrency, Rph, Tph), ExpiresAt = ExpiresAt, IsAdmin = Admin,
        Guard = Guard is null ? null : GuardPolicyNames.ParseForKey(Guard, "guard"),
    };

    private static string[]? ReadModels(JsonFields f)
    {
        if (f.Array("models", 0, AdminBody.MaxItems) is not { } array) return null;
        var models = new string[array.GetArrayLength()];
        var i = 0;
        foreach (var item in array.EnumerateArray())
        {
            var path = $"{f.PathOf("models")}[{i}]";
            if (item.ValueKind != System.Text.Json.JsonValueKind.String) throw ApiException.WrongType(path, "a string", JsonFields.Kind(item));
            models[i++] = item.GetString()!;
        }
        return models;
    }

    private static DateTimeOffset? ReadExpiry(JsonFields f)
    {
        if (f.String("expires_at", 64) is not { } text) return null;
        // ISO 8601 as System.Text.Json writes it (what `bulwark keys create --expires` sends); no offset means UTC.
        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at)) return at;
        throw ApiException.Invalid("expires_at", $"expires_at must be an ISO 8601 date and time such as 2027-01-31T00:00:00Z; got '{text}'.");
    }
}

/// <summary>Body of <c>POST /admin/keys/{id}/rotate</c>, optional: <c>grace</c> as <c>keys rotate --grace</c> takes it (<c>24h</c>); none or <c>0</c> revokes the old key at once.</summary>
public sealed record RotateKeyRequest([property: JsonPropertyName("grace")] string? Grace = null)
{
    public static RotateKeyRequest Read(JsonFields f) => new(f.String("grace", 64));
}

/// <summary>Body of <c>POST /admin/ip-blocks</c> and <c>POST /admin/ip-blocks/remove</c>.</summary>
public sealed record IpBlockRequest([property: JsonPropertyName("cidr")] string Cidr, [property: JsonPropertyName("reason")] string? Reason = null)
{
    public static IpBlockRequest Read(JsonFields f) => new(f.String("cidr", AdminBody.MaxText) ?? "", f.String("reason", AdminBody.MaxText));
}

/// <summary>Body of <c>PUT /admin/log-level</c>.</summary>
public sealed record LogLevelRequest([property: JsonPropertyName("level")] string Level)
{
    public static LogLevelRequest Read(JsonFields f) => new(f.String("level", AdminBody.MaxText) ?? "");
}

/// <summary>
/// Body of <c>POST /admin/isolate</c> and <c>/admin/resume</c> (optional): without <c>replica</c> or
/// <c>all_replicas</c> the replica that answers; <c>replica</c> names one (an id from
/// <c>GET /admin/requests</c> or <c>/admin/isolation</c>); <c>all_replicas</c> every one sharing the store.
/// </summary>
public sealed record IsolationRequest(
    [property: JsonPropertyName("reason")] string? Reason = null,
    [property: JsonPropertyName("replica")] string? Replica = null,
    [property: JsonPropertyName("all_replicas")] bool AllReplicas = false)
{
    public static IsolationRequest Read(JsonFields f) =>
        new(f.String("reason", AdminBody.MaxText), f.String("replica", AdminBody.MaxText), f.Boolean("all_replicas") ?? false);
}

/// <summary>
/// The admin API: keys, IP blocks, active requests, log level, the audit log. Every route needs the admin scope,
/// which only admin keys carry. Changes go through <see cref="KeyIssuer"/> and
/// <see cref="IncidentControls"/>, so they are audited and reach every replica within a second.
/// </summary>
public static class AdminEndpoints
{
    public const int DefaultAuditLimit = 50;
    public const int MaxAuditLimit = 10_000;

    public static RouteGroupBuilder MapBulwarkAdmin(this IEndpointRouteBuilder endpoints, string prefix = "/admin")
    {
        var admin = endpoints.MapGroup(prefix).WithMetadata(new RequireScopeAttribute(Scopes.Admin));
        // A body the group cannot read is answered here, in OpenAI's error shape, whatever host maps the group.
        admin.AddEndpointFilter(async (invocation, next) =>
        {
            try { return await next(invocation); }
            catch (ApiException e)
            {
                await ErrorResponse.WriteAsync(invocation.HttpContext, e);
                return Results.Empty;
            }
        });

        admin.MapPost("/keys", async (KeyIssuer issuer, HttpContext context) =>
        {
            var body = await AdminBody.ReadAsync(context, CreateKeyRequest.Read);
            try
            {
                var issued = await issuer.CreateAsync(body.ToSpec(), Actor(context), context.RequestAborted);
                return Results.Json(KeyView.Of(issued.Record, issued.Key), statusCode: StatusCodes.Status201Created);
            }
            catch (ArgumentException e) { return BadRequest(e.Message); }
        });
        admin.MapGet("/keys", async (SecurityStorage storage, CancellationToken ct) =>
            Results.Json(new { data = (await storage.Keys.ListAsync(ct)).Select(k => KeyView.Of(k, null)) }));
        admin.MapPost("/keys/{id}/revoke", async (string id, KeyIssuer issuer, HttpContext context) =>
            await issuer.RevokeAsync(id, Actor(context), context.RequestAborted) ? Results.NoContent() : NotFound($"no key with id '{id}'"));
        admin.MapPost("/keys/{id}/rotate", async (string id, KeyIssuer issuer, HttpContext context) =>
        {
            try
            {
                var body = await AdminBody.ReadOptionalAsync(context, RotateKeyRequest.Read, new RotateKeyRequest());
                var grace = body.Grace is { } text ? RotationGrace.Parse(text) : TimeSpan.Zero;
                return await issuer.RotateAsync(id, Actor(context), grace, context.RequestAborted) is { } issued
                    ? Results.Json(KeyView.Of(issued))
                    : NotFound($"no active key with id '{id}'");
            }
            catch (ArgumentException e) { return BadRequest(e.Message); }
            catch (KeyConflictException e) { return Error(StatusCodes.Status409Conflict, "conflict", e.Message); }
        });

        admin.MapGet("/ip-blocks", async (SecurityStorage storage, CancellationToken ct) =>
            Results.Json(new { data = (await storage.IpBlocks.ListAsync(ct)).Select(b => new { cidr = b.Cidr, reason = b.Reason, created_at = b.CreatedAt }) }));
        admin.MapPost("/ip-blocks", async (IncidentControls controls, HttpContext context) =>
        {
            var body = await AdminBody.ReadAsync(context, IpBlockRequest.Read);
            try { return Results.Json(new { cidr = await controls.BlockIpAsync(body.Cidr ?? "", body.Reason ?? "", Actor(context), context.RequestAborted) }); }
            catch (FormatException e) { return BadRequest(e.Message); }
        });
        admin.MapPost("/ip-blocks/remove", async (IncidentControls controls, HttpContext context) =>
        {
            var body = await AdminBody.ReadAsync(context, IpBlockRequest.Read);
            try { return await controls.UnblockIpAsync(body.Cidr ?? "", Actor(context), context.RequestAborted) ? Results.NoContent() : NotFound($"'{body.Cidr}' is not blocked"); }
            catch (FormatException e) { return BadRequest(e.Message); }
        });

        // The newest audit records, newest first, as `bulwark admin audit` shows them.
        admin.MapGet("/audit", async (int? limit, string? kind, SecurityStorage storage, CancellationToken ct) =>
        {
            var n = limit ?? DefaultAuditLimit;
            if (n is < 1 or > MaxAuditLimit) return BadRequest($"limit must be between 1 and {MaxAuditLimit}; got {n}");
            return Results.Json(new { data = await storage.Audit.ReadRecentAsync(n, kind, ct) });
        });

        // Every replica's requests: this one's live, the others' as published within the last few seconds.
        admin.MapGet("/requests", async (ActiveRequestPublisher requests, CancellationToken ct) =>
            Results.Json(new { data = await requests.AllAsync(ct), replica = requests.ReplicaId }));
        admin.MapPost("/requests/{id}/cancel", async (string id, IncidentControls controls, HttpContext context) =>
        {
            await controls.CancelRequestAsync(id, Actor(context), context.RequestAborted);
            return Results.Accepted();
        });
        // Isolation: refuse new inference (503) while in-flight requests finish and /ready fails, so a load balancer drains the replica.
        admin.MapPost("/isolate", (HttpContext context, ReplicaIsolation isolation, IncidentControls controls, ReplicaIdentity replica) =>
            IsolationAsync(context, isolation, controls, replica, isolate: true));
        admin.MapPost("/resume", (HttpContext context, ReplicaIsolation isolation, IncidentControls controls, ReplicaIdentity replica) =>
            IsolationAsync(context, isolation, controls, replica, isolate: false));
        admin.MapGet("/isolation", (HttpContext context, ReplicaIsolation isolation, ReplicaIdentity replica) =>
            Results.Json(IsolationView(context, isolation, replica)));

        admin.MapPut("/log-level", async (IncidentControls controls, HttpContext context) =>
        {
            var body = await AdminBody.ReadAsync(context, LogLevelRequest.Read);
            if (!RuntimeLogLevel.TryParse(body.Level ?? "", out var level))
                return BadRequest($"level must be one of Trace, Debug, Information, Warning, Error, Critical, None or default; got '{body.Level}'");
            await controls.SetLogLevelAsync(level, Actor(context), context.RequestAborted);
            return Results.NoContent();
        });
        return admin;
    }

    private static async Task<IResult> IsolationAsync(HttpContext context, ReplicaIsolation isolation, IncidentControls controls, ReplicaIdentity replica, bool isolate)
    {
        var body = await AdminBody.ReadOptionalAsync(context, IsolationRequest.Read, new IsolationRequest());
        try
        {
            var command = await ApplyIsolationAsync(body, isolate, Actor(context), isolation, controls, replica, context.RequestAborted);
            return Results.Json(IsolationView(context, isolation, replica) with { Target = command.Target });
        }
        catch (ArgumentException e) { return BadRequest(e.Message); }
    }

    /// <summary>
    /// Isolates (or resumes) the replicas <paramref name="body"/> names: this one at once (so the answer can say it is
    /// done), others through the incident log within a second; audited. The admin API's and the console's.
    /// </summary>
    /// <exception cref="ArgumentException">Both a replica and all replicas, or a target or reason that is empty, too long or not text.</exception>
    internal static async Task<IsolationCommand> ApplyIsolationAsync(IsolationRequest body, bool isolate, string actor, ReplicaIsolation isolation,
        IncidentControls controls, ReplicaIdentity replica, CancellationToken ct)
    {
        if (body.AllReplicas && body.Replica is not null) throw new ArgumentException("give replica or all_replicas, not both");
        var target = body.AllReplicas ? IsolationCommand.AllReplicas : body.Replica?.Trim() ?? replica.Id;
        var command = IsolationCommand.Create(target, body.Reason ?? "", actor);
        if (command.IsFor(replica.Id))
        {
            if (isolate) isolation.Isolate(command.Reason, command.Actor); else isolation.Resume(command.Actor);
        }
        if (target == replica.Id) await controls.AuditIsolationAsync(isolate, command, ct);
        else await controls.AnnounceIsolationAsync(isolate, command.Target, command.Reason, command.Actor, ct);
        return command;
    }

    private static IsolationStatus IsolationView(HttpContext context, ReplicaIsolation isolation, ReplicaIdentity replica)
    {
        var current = isolation.Current;
        // The degradation level exists where the spine runs (not in a bare security front).
        var (degradation, since, why) = context.RequestServices.GetService<ServiceLevel>()?.Degradation ?? (DegradationLevel.Normal, default, "");
        return new IsolationStatus(replica.Id, current is not null, current?.Since, current?.Reason, current?.Actor,
            ServiceLevel.Name(degradation), since, why.Length == 0 ? null : why, null);
    }

    /// <summary>Who did an admin action, as audit records name them.</summary>
    internal static string Actor(HttpContext context) => "admin key " + (context.GetCaller()?.KeyId ?? "?");

    private static IResult BadRequest(string message) => Error(StatusCodes.Status400BadRequest, "invalid_value", message);

    private static IResult NotFound(string message) => Error(StatusCodes.Status404NotFound, "not_found", message);

    // Messages quote the offending value; a key pasted into a field is masked before it is echoed.
    private static IResult Error(int status, string code, string message) =>
        Results.Json(new { error = new { message = SecretRedactor.Redact(message), type = "invalid_request_error", param = (string?)null, code } }, statusCode: status);
}

/// <summary>This replica's isolation and degradation level, as <c>GET /admin/isolation</c> and the isolate/resume calls answer.</summary>
public sealed record IsolationStatus(
    [property: JsonPropertyName("replica")] string Replica,
    [property: JsonPropertyName("isolated")] bool Isolated,
    [property: JsonPropertyName("isolated_since")] DateTimeOffset? IsolatedSince,
    [property: JsonPropertyName("reason")] string? Reason,
    [property: JsonPropertyName("actor")] string? Actor,
    [property: JsonPropertyName("degradation")] string Degradation,
    [property: JsonPropertyName("degradation_since")] DateTimeOffset DegradationSince,
    [property: JsonPropertyName("degradation_signals")] string? DegradationSignals,
    [property: JsonPropertyName("target"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Target);

/// <summary>A key as the admin API and <c>bulwark keys --json</c> show it: never the hash; the key text only right after issue.</summary>
public static class KeyView
{
    public static Dictionary<string, object?> Of(ApiKeyRecord k, string? key)
    {
        var view = new Dictionary<string, object?>
        {
            ["id"] = k.Id, ["name"] = k.Name, ["tenant"] = k.Tenant, ["admin"] = k.IsAdmin, ["models"] = k.Models,
            ["rpm"] = k.Limits.RequestsPerMinute, ["rph"] = k.Limits.RequestsPerHour, ["tpm"] = k.Limits.TokensPerMinute,
            ["tph"] = k.Limits.TokensPerHour, ["tokens_per_day"] = k.Limits.TokensPerDay,
            ["concurrency"] = k.Limits.MaxConcurrent, ["priority"] = k.Priority, ["expires_at"] = k.ExpiresAt, ["revoked"] = k.Revoked,
            ["created_at"] = k.CreatedAt, ["last_used_at"] = k.LastUsedAt, ["replaced_by"] = k.ReplacedBy, ["retires_at"] = k.RetiresAt,
            ["guard"] = k.Guard is { } guard ? GuardPolicyNames.Name(guard) : null,
        };
        if (key is not null) view["key"] = key;
        return view;
    }

    /// <summary>A key just issued; after a rotation, with the key it replaced as <c>rotated_from</c> (its id, and when its grace ends, or null when it was revoked at once).</summary>
    public static Dictionary<string, object?> Of(IssuedKey issued)
    {
        var view = Of(issued.Record, issued.Key);
        if (issued.Replaced is { } old) view["rotated_from"] = new Dictionary<string, object?> { ["id"] = old.Id, ["retires_at"] = old.RetiresAt };
        return view;
    }
}
