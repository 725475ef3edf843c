using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Requests;

/// <summary>
/// Who is calling, as established by the identity stage from an API key (or the metrics token):
/// read by every later stage (model ACL, quotas, admission priority, guard policy, audit). Attach
/// and read it with <see cref="CallerExtensions"/>. Holds no secret.
/// </summary>
public sealed record Caller
{
    public required string KeyId { get; init; }
    public string Tenant { get; init; } = "";
    public required string KeyName { get; init; }
    public required IReadOnlyList<string> Scopes { get; init; }
    public KeyLimits Limits { get; init; } = KeyLimits.None;

    /// <summary>Higher runs first when admission or the engine must choose.</summary>
    public int Priority { get; init; }

    public bool IsAdmin { get; init; }

    /// <summary>The models this key may use (exact, case-sensitive ids); empty: every model.</summary>
    public IReadOnlyList<string> Models { get; init; } = [];

    /// <summary>False only for the metrics token, which may use no model at all.</summary>
    public bool IsKey { get; init; } = true;

    /// <summary>The key's own input guard policy, or null (the tenant's applies).</summary>
    public GuardPolicy? Guard { get; init; }

    public bool HasScope(string scope)
    {
        foreach (var s in Scopes) if (s == scope) return true;
        return false;
    }

    /// <summary>Whether this key may use <paramref name="model"/>.</summary>
    public bool CanUseModel(string model)
    {
        if (!IsKey) return false;
        if (Models.Count == 0) return true;
        foreach (var m in Models) if (m == model) return true;
        return false;
    }
}

public static class CallerExtensions
{
    private static readonly object ItemKey = new();

    public static void SetCaller(this HttpContext context, Caller caller) => context.Items[ItemKey] = caller;

    /// <summary>The authenticated caller, or null on a public route (or a server without the security front).</summary>
    public static Caller? GetCaller(this HttpContext context) =>
        context.Items.TryGetValue(ItemKey, out var value) ? value as Caller : null;
}
