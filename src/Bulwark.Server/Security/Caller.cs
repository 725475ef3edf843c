using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Security;

/// <summary>
/// Who is calling, as established by the identity stage: read by every later stage (model ACL,
/// quotas, admission priority, audit). Attach/read with <see cref="CallerExtensions"/>.
/// </summary>
public sealed class Caller
{
    internal Caller(ApiKeyRecord? key, IReadOnlyList<string> scopes)
    {
        Key = key;
        Scopes = scopes;
    }

    /// <summary>The stored key, or null for the metrics token.</summary>
    internal ApiKeyRecord? Key { get; }

    public string KeyId => Key?.Id ?? "metrics-token";
    public string Tenant => Key?.Tenant ?? "";
    public string KeyName => Key?.Name ?? "metrics-token";
    public IReadOnlyList<string> Scopes { get; }
    public KeyLimits Limits => Key?.Limits ?? KeyLimits.None;
    public int Priority => Key?.Priority ?? 0;
    public bool IsAdmin => Key?.IsAdmin ?? false;
    /// <summary>The key's own input guard policy, or null (the tenant's applies).</summary>
    public Guardrails.Input.GuardPolicy? Guard => Key?.Guard;

    public bool HasScope(string scope)
    {
        foreach (var s in Scopes) if (s == scope) return true;
        return false;
    }

    /// <summary>Whether this key may use <paramref name="model"/> (exact, case-sensitive id).</summary>
    public bool CanUseModel(string model)
    {
        if (Key is null || Key.Models.Count == 0) return Key is not null;
        foreach (var m in Key.Models) if (m == model) return true;
        return false;
    }
}

public static class CallerExtensions
{
    private static readonly object ItemKey = new();

    public static void SetCaller(this HttpContext context, Caller caller) => context.Items[ItemKey] = caller;

    /// <summary>The authenticated caller, or null on a public route.</summary>
    public static Caller? GetCaller(this HttpContext context) =>
        context.Items.TryGetValue(ItemKey, out var value) ? value as Caller : null;
}
