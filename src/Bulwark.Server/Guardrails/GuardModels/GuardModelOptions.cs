using System.Globalization;
using Bulwark.Server.Guardrails.Input;
using Microsoft.Extensions.Configuration;

namespace Bulwark.Server.Guardrails.GuardModels;

/// <summary>When the guard model runs on a request: every request, only those the fast detector flagged, a random share, or never (<c>off</c>: the output stage alone).</summary>
public readonly record struct GuardModelMode(string Kind, double Rate)
{
    public static GuardModelMode Every => new("every", 1);

    public static GuardModelMode Flagged => new("flagged", 1);

    public static GuardModelMode Sample(double rate) => new("sample", rate);

    public static GuardModelMode Off => new("off", 0);

    /// <summary><c>every</c>, <c>flagged</c>, <c>sample:&lt;rate&gt;</c> with a rate in (0, 1], or <c>off</c>.</summary>
    public static GuardModelMode Parse(string? value, string setting)
    {
        if (value is "off") return Off;
        if (value is "every") return Every;
        if (value is "flagged") return Flagged;
        if (value is not null && value.StartsWith("sample:", StringComparison.Ordinal)
            && double.TryParse(value.AsSpan("sample:".Length), NumberStyles.Float, CultureInfo.InvariantCulture, out var rate) && rate is > 0 and <= 1)
            return Sample(rate);
        throw new FormatException($"{setting} must be every, flagged, sample:<rate> with a rate in (0, 1], or off; got '{value}'");
    }

    public override string ToString() => Kind == "sample" ? $"sample:{Rate.ToString(CultureInfo.InvariantCulture)}" : Kind;
}

/// <summary>What a verdict's categories mean for one tenant (or the default): a decision per category, and for categories not listed.</summary>
public sealed record GuardCategoryPolicy
{
    /// <summary>Decision per category id as the format spells it (<c>S1</c>, <c>Jailbreak</c>).</summary>
    public IReadOnlyDictionary<string, GuardDecision> Categories { get; init; } = new Dictionary<string, GuardDecision>(StringComparer.OrdinalIgnoreCase);

    /// <summary>An unsafe verdict whose categories are not listed (or that names none).</summary>
    public GuardDecision Unsafe { get; init; } = GuardDecision.Block;

    /// <summary>Qwen3Guard's <c>Controversial</c>.</summary>
    public GuardDecision Controversial { get; init; } = GuardDecision.Flag;

    /// <summary>The decision for <paramref name="verdict"/>: allow when safe, else the most severe of its categories' decisions.</summary>
    public GuardDecision Decide(GuardModelVerdict verdict)
    {
        if (verdict.Safety == GuardSafety.Safe) return GuardDecision.Allow;
        var fallback = verdict.Safety == GuardSafety.Controversial ? Controversial : Unsafe;
        if (verdict.Categories.Count == 0) return fallback;
        var decision = GuardDecision.Allow;
        foreach (var c in verdict.Categories)
        {
            var d = Categories.TryGetValue(c, out var listed) ? listed : fallback;
            if (d > decision) decision = d;
        }
        // A controversial verdict is never more severe than its own setting allows.
        return verdict.Safety == GuardSafety.Controversial && decision > Controversial ? Controversial : decision;
    }
}

/// <summary>
/// Configuration section <c>Bulwark:Guardrails:GuardModel</c>: the guard model stage of the input
/// guard. <c>Model</c> (a model id this server serves, embedded or through an upstream pool; unset:
/// no stage), <c>Format</c> (<c>llama-guard-3</c> | <c>qwen3guard</c>), <c>Mode</c> (<c>every</c> |
/// <c>flagged</c> | <c>sample:&lt;rate&gt;</c> | <c>off</c>, default <c>flagged</c>), <c>TimeoutMs</c> (default
/// 2000), <c>Fallback</c> (decision when the check times out, fails or the text is over
/// <c>MaxPromptChars</c>; default <c>flag</c>), <c>MaxPromptChars</c> (default 16000), the category
/// policy (<c>Categories:&lt;id&gt;</c>, <c>Unsafe</c>, <c>Controversial</c>) and per-tenant category
/// policies under <c>Tenants:&lt;tenant&gt;</c>.
/// </summary>
public sealed class GuardModelOptions
{
    public const string Section = "Bulwark:Guardrails:GuardModel";

    public const int MaxTimeoutMs = 600_000;

    public string? Model { get; init; }

    public GuardModelFormat Format { get; init; } = LlamaGuard3Format.Instance;

    public GuardModelMode Mode { get; init; } = GuardModelMode.Flagged;

    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(2);

    public GuardDecision Fallback { get; init; } = GuardDecision.Flag;

    public int MaxPromptChars { get; init; } = 16_000;

    public GuardCategoryPolicy Policy { get; init; } = new();

    public IReadOnlyDictionary<string, GuardCategoryPolicy> TenantPolicies { get; init; } = new Dictionary<string, GuardCategoryPolicy>(StringComparer.Ordinal);

    public bool Enabled => !string.IsNullOrEmpty(Model);

    public GuardCategoryPolicy PolicyFor(string? tenant) =>
        tenant is not null && TenantPolicies.TryGetValue(tenant, out var policy) ? policy : Policy;

    /// <summary>Reads and validates the section; every error names the key and the value.</summary>
    public static GuardModelOptions Read(IConfiguration configuration)
    {
        var section = configuration.GetSection(Section);
        var format = section["Format"] is { } f ? GuardModelFormat.Parse(f, $"{Section}:Format") : LlamaGuard3Format.Instance;
        var policy = ReadPolicy(section, Section, format, new GuardCategoryPolicy());
        var tenants = new Dictionary<string, GuardCategoryPolicy>(StringComparer.Ordinal);
        foreach (var tenant in section.GetSection("Tenants").GetChildren())
            tenants[tenant.Key] = ReadPolicy(tenant, $"{Section}:Tenants:{tenant.Key}", format, policy);
        return new GuardModelOptions
        {
            Model = section["Model"],
            Format = format,
            Mode = section["Mode"] is { } m ? GuardModelMode.Parse(m, $"{Section}:Mode") : GuardModelMode.Flagged,
            Timeout = TimeSpan.FromMilliseconds(ReadInt(section, Section, "TimeoutMs", 2000, 1, MaxTimeoutMs)),
            Fallback = section["Fallback"] is { } fb ? ParseDecision(fb, $"{Section}:Fallback") : GuardDecision.Flag,
            MaxPromptChars = ReadInt(section, Section, "MaxPromptChars", 16_000, 1, 1_000_000),
            Policy = policy,
            TenantPolicies = tenants,
        };
    }

    /// <summary>A tenant's policy starts from the default one: it lists only what differs.</summary>
    internal static GuardCategoryPolicy ReadPolicy(IConfigurationSection section, string path, GuardModelFormat format, GuardCategoryPolicy inherited)
    {
        var categories = new Dictionary<string, GuardDecision>(inherited.Categories, StringComparer.OrdinalIgnoreCase);
        foreach (var c in section.GetSection("Categories").GetChildren())
        {
            if (!format.Categories.Contains(c.Key, StringComparer.OrdinalIgnoreCase))
                throw new FormatException($"{path}:Categories:{c.Key} is not a {format.Name} category; the categories are {string.Join(", ", format.Categories)}");
            categories[c.Key] = ParseDecision(c.Value, $"{path}:Categories:{c.Key}");
        }
        return new GuardCategoryPolicy
        {
            Categories = categories,
            Unsafe = section["Unsafe"] is { } u ? ParseDecision(u, $"{path}:Unsafe") : inherited.Unsafe,
            Controversial = section["Controversial"] is { } c2 ? ParseDecision(c2, $"{path}:Controversial") : inherited.Controversial,
        };
    }

    public static GuardDecision ParseDecision(string? value, string setting) => value switch
    {
        "allow" => GuardDecision.Allow,
        "flag" => GuardDecision.Flag,
        "block" => GuardDecision.Block,
        _ => throw new FormatException($"{setting} must be allow, flag or block; got '{value}'"),
    };

    internal static int ReadInt(IConfigurationSection section, string path, string key, int fallback, int min, int max)
    {
        var value = section[key];
        if (value is null) return fallback;
        return int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max
            ? n
            : throw new FormatException($"{path}:{key} must be a whole number between {min} and {max}; got '{value}'");
    }
}
