using Microsoft.Extensions.Configuration;

namespace Bulwark.Server.Guardrails.GuardModels;

/// <summary>
/// Configuration section <c>Bulwark:Guardrails:GuardModel:Output</c>: the guard model judging what
/// a model answers. <c>Enabled</c> (default false; needs <c>GuardModel:Model</c>), <c>CheckEveryTokens</c>
/// (streams: a check after every N generated tokens, and one at the end; default 32, 1..4096),
/// <c>TimeoutMs</c> and <c>Fallback</c> (default: the input stage's), the category policy
/// (<c>Categories:&lt;id&gt;</c>, <c>Unsafe</c>, <c>Controversial</c>, starting from the input stage's)
/// and per-tenant policies under <c>Tenants:&lt;tenant&gt;</c> (starting from the output's own).
/// The model, format and <c>MaxPromptChars</c> are the guard model's.
/// </summary>
public sealed class OutputModerationOptions
{
    public const string Section = GuardModelOptions.Section + ":Output";

    public const int MaxCheckEveryTokens = 4096;

    public bool Enabled { get; init; }

    /// <summary>A stream's hold-back window: text is released once a check covering it passed, checks come every this many tokens.</summary>
    public int CheckEveryTokens { get; init; } = 32;

    /// <summary>The checks' bounds and policy, as a guard model stage that checks every answer.</summary>
    public GuardModelOptions Checks { get; init; } = new() { Mode = GuardModelMode.Every };

    /// <summary>Reads and validates the section against the guard model's own (<paramref name="guard"/>); every error names the key and the value.</summary>
    public static OutputModerationOptions Read(IConfiguration configuration, GuardModelOptions guard)
    {
        var section = configuration.GetSection(Section);
        var enabled = section["Enabled"] switch
        {
            null or "false" or "False" => false,
            "true" or "True" => true,
            var v => throw new FormatException($"{Section}:Enabled must be true or false; got '{v}'"),
        };
        if (enabled && !guard.Enabled)
            throw new FormatException($"{Section}:Enabled is true but {GuardModelOptions.Section}:Model is not set: name the guard model the output is checked by");
        var policy = GuardModelOptions.ReadPolicy(section, Section, guard.Format, guard.Policy);
        var tenants = new Dictionary<string, GuardCategoryPolicy>(StringComparer.Ordinal);
        foreach (var tenant in section.GetSection("Tenants").GetChildren())
            tenants[tenant.Key] = GuardModelOptions.ReadPolicy(tenant, $"{Section}:Tenants:{tenant.Key}", guard.Format, policy);
        return new OutputModerationOptions
        {
            Enabled = enabled,
            CheckEveryTokens = GuardModelOptions.ReadInt(section, Section, "CheckEveryTokens", 32, 1, MaxCheckEveryTokens),
            Checks = new GuardModelOptions
            {
                Model = guard.Model,
                Format = guard.Format,
                Mode = GuardModelMode.Every,
                Timeout = section["TimeoutMs"] is null ? guard.Timeout : TimeSpan.FromMilliseconds(GuardModelOptions.ReadInt(section, Section, "TimeoutMs", 0, 1, GuardModelOptions.MaxTimeoutMs)),
                Fallback = section["Fallback"] is { } fb ? GuardModelOptions.ParseDecision(fb, $"{Section}:Fallback") : guard.Fallback,
                MaxPromptChars = guard.MaxPromptChars,
                Policy = policy,
                TenantPolicies = tenants,
            },
        };
    }
}
