namespace Bulwark.Server.Requests;

/// <summary>
/// The limits one key carries; 0 means "no limit" for every field. The hourly limits come last so
/// that keys written before they existed (and code that names only the older four) read as "no hourly limit".
/// </summary>
public sealed record KeyLimits(long RequestsPerMinute, long TokensPerMinute, long TokensPerDay, long MaxConcurrent,
    long RequestsPerHour = 0, long TokensPerHour = 0)
{
    public static readonly KeyLimits None = new(0, 0, 0, 0);
}
