namespace Bulwark.Server.Requests;

/// <summary>The limits one key carries; 0 means "no limit" for every field.</summary>
public sealed record KeyLimits(long RequestsPerMinute, long TokensPerMinute, long TokensPerDay, long MaxConcurrent)
{
    public static readonly KeyLimits None = new(0, 0, 0, 0);
}
