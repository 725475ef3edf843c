using Bulwark.Server.Requests;
namespace Bulwark.Server.Security;

/// <summary>What an operator asks for when creating a key; checked by <see cref="Validate"/>.</summary>
public sealed record KeySpec
{
    public const int MaxNameLength = 100;
    public const int MaxPriority = 9;

    public required string Name { get; init; }
    public string Tenant { get; init; } = "default";
    public IReadOnlyList<string> Models { get; init; } = [];
    public KeyLimits Limits { get; init; } = KeyLimits.None;
    /// <summary>0 (lowest) to 9; admission serves higher first.</summary>
    public int Priority { get; init; }
    public DateTimeOffset? ExpiresAt { get; init; }
    public bool IsAdmin { get; init; }
    /// <summary>Input guard policy of this key, overriding its tenant's; null: no override.</summary>
    public GuardPolicy? Guard { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the field, the value and the limit.</summary>
    public void Validate(DateTimeOffset now)
    {
        CheckText("name", Name);
        CheckText("tenant", Tenant);
        foreach (var model in Models) CheckText("models", model);
        CheckNonNegative("rpm", Limits.RequestsPerMinute);
        CheckNonNegative("rph", Limits.RequestsPerHour);
        CheckNonNegative("tpm", Limits.TokensPerMinute);
        CheckNonNegative("tph", Limits.TokensPerHour);
        CheckNonNegative("tokens-per-day", Limits.TokensPerDay);
        CheckNonNegative("concurrency", Limits.MaxConcurrent);
        if (Priority is < 0 or > MaxPriority)
            throw new ArgumentException($"priority must be between 0 and {MaxPriority}; got {Priority}");
        if (ExpiresAt is { } at && at <= now)
            throw new ArgumentException($"expires must be in the future; got {at:O} (now {now:O})");
    }

    private static void CheckText(string field, string value)
    {
        if (string.IsNullOrWhiteSpace(value) || value.Length > MaxNameLength || value.Any(c => char.IsControl(c) || c == ','))
            throw new ArgumentException($"{field} must be 1 to {MaxNameLength} printable characters without commas; got '{value}'");
    }

    private static void CheckNonNegative(string field, long value)
    {
        if (value < 0) throw new ArgumentException($"{field} must be 0 (no limit) or more; got {value}");
    }
}
