namespace Bulwark.Server.Admission;

/// <summary>Bounds of the queue in front of the engine (configuration section <c>Bulwark:Admission</c>).</summary>
public sealed class AdmissionOptions
{
    public const string Section = "Bulwark:Admission";

    /// <summary>Requests generating at once. More than the engine's batch wastes memory; fewer leaves it idle.</summary>
    public int MaxConcurrentRequests { get; set; } = 16;

    /// <summary>Requests that may wait for a slot; one more is refused at once with 429.</summary>
    public int MaxQueueLength { get; set; } = 64;

    /// <summary>A request still waiting after this long is refused with 503 rather than left hanging.</summary>
    public TimeSpan MaxQueueWait { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>What <c>Retry-After</c> suggests to a refused client.</summary>
    public TimeSpan RetryAfter { get; set; } = TimeSpan.FromSeconds(1);

    public IEnumerable<string> Validate()
    {
        if (MaxConcurrentRequests is < 1 or > 4096)
            yield return $"Bulwark:Admission:MaxConcurrentRequests must be between 1 and 4096; got {MaxConcurrentRequests}.";
        if (MaxQueueLength is < 0 or > 100_000)
            yield return $"Bulwark:Admission:MaxQueueLength must be between 0 and 100000; got {MaxQueueLength}.";
        if (MaxQueueWait <= TimeSpan.Zero || MaxQueueWait > TimeSpan.FromHours(1))
            yield return $"Bulwark:Admission:MaxQueueWait must be more than 0 and at most 01:00:00; got {MaxQueueWait}.";
        if (RetryAfter < TimeSpan.FromSeconds(1) || RetryAfter > TimeSpan.FromHours(1))
            yield return $"Bulwark:Admission:RetryAfter must be between 00:00:01 and 01:00:00; got {RetryAfter}.";
    }
}
