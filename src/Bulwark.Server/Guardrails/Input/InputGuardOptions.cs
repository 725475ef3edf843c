using Bulwark.Server.Requests;
using Microsoft.Extensions.Configuration;

namespace Bulwark.Server.Guardrails.Input;

/// <summary>
/// Configuration section <c>Bulwark:Guardrails:Input</c>: <c>Policy</c> (<c>off | flag | block</c>,
/// default <c>flag</c>), <c>Tenants:&lt;tenant&gt;</c> per-tenant policy overrides, and the
/// sanitizer caps <c>MaxSpaceRun</c>/<c>MaxNewlineRun</c>. API keys carry no guard policy of their
/// own; a key's tenant decides.
/// </summary>
public sealed class InputGuardOptions
{
    public const string Section = "Bulwark:Guardrails:Input";

    public GuardPolicy Policy { get; init; } = GuardPolicy.Flag;

    public IReadOnlyDictionary<string, GuardPolicy> TenantPolicies { get; init; } = new Dictionary<string, GuardPolicy>(StringComparer.Ordinal);

    public int MaxSpaceRun { get; init; } = InputSanitizer.DefaultMaxSpaceRun;

    public int MaxNewlineRun { get; init; } = InputSanitizer.DefaultMaxNewlineRun;

    public GuardPolicy PolicyFor(string? tenant) =>
        tenant is not null && TenantPolicies.TryGetValue(tenant, out var policy) ? policy : Policy;

    /// <summary>The key's own policy when it has one (the key wins over its tenant), else <see cref="PolicyFor(string?)"/>.</summary>
    public GuardPolicy PolicyFor(string? tenant, GuardPolicy? keyPolicy) => keyPolicy ?? PolicyFor(tenant);

    /// <summary>Reads and validates the section; the error names the key and the value.</summary>
    public static InputGuardOptions Read(IConfiguration configuration)
    {
        var section = configuration.GetSection(Section);
        var tenants = new Dictionary<string, GuardPolicy>(StringComparer.Ordinal);
        foreach (var tenant in section.GetSection("Tenants").GetChildren())
            tenants[tenant.Key] = GuardPolicyNames.Parse(tenant.Value, $"{Section}:Tenants:{tenant.Key}");
        return new InputGuardOptions
        {
            Policy = section["Policy"] is { } p ? GuardPolicyNames.Parse(p, $"{Section}:Policy") : GuardPolicy.Flag,
            TenantPolicies = tenants,
            MaxSpaceRun = ReadCap(section, "MaxSpaceRun", InputSanitizer.DefaultMaxSpaceRun),
            MaxNewlineRun = ReadCap(section, "MaxNewlineRun", InputSanitizer.DefaultMaxNewlineRun),
        };
    }

    private static int ReadCap(IConfigurationSection section, string key, int fallback)
    {
        var value = section[key];
        if (value is null) return fallback;
        return int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) && n is >= 1 and <= 1_000_000
            ? n
            : throw new FormatException($"{Section}:{key} must be a whole number between 1 and 1000000; got '{value}'");
    }
}
