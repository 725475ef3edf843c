namespace Bulwark.Server.Security;

/// <summary>
/// What a credential may reach. Every endpoint needs <see cref="Inference"/> unless its metadata
/// names another scope (<see cref="RequireScopeAttribute"/>) or its path is on the public list.
/// </summary>
public static class Scopes
{
    public const string Inference = "inference";
    public const string Admin = "admin";
    public const string Metrics = "metrics";

    internal static readonly string[] ApiKey = [Inference];
    internal static readonly string[] AdminKey = [Admin, Metrics];
    internal static readonly string[] MetricsToken = [Metrics];
}

/// <summary>Endpoint metadata naming the scope a caller needs.</summary>
[AttributeUsage(AttributeTargets.Method | AttributeTargets.Class)]
public sealed class RequireScopeAttribute(string scope) : Attribute
{
    public string Scope { get; } = scope;
}

/// <summary>
/// Endpoint metadata of a route that authenticates its callers itself, by a server-side session rather than a
/// bearer key (the operator console, <c>/console</c>). The identity stage still refuses blocked addresses, then
/// hands such a request on without looking for a key; the route's own filter must establish the caller or refuse.
/// </summary>
[AttributeUsage(AttributeTargets.Method | AttributeTargets.Class)]
public sealed class SessionRouteAttribute : Attribute;
