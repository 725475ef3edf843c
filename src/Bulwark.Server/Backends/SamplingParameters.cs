namespace Bulwark.Server.Backends;

/// <summary>
/// Validated sampling settings, in the units OpenAI uses. <see cref="Temperature"/> 0 means greedy.
/// <see cref="TopK"/> 0 and <see cref="MinP"/> 0 mean "off"; penalties of 0 (1 for repetition) mean "off".
/// </summary>
public sealed record SamplingParameters
{
    public float Temperature { get; init; } = 1f;
    public float TopP { get; init; } = 1f;
    public int TopK { get; init; }
    public float MinP { get; init; }
    public float PresencePenalty { get; init; }
    public float FrequencyPenalty { get; init; }
    public float RepetitionPenalty { get; init; } = 1f;

    /// <summary>Token id → additive bias in [-100, 100].</summary>
    public IReadOnlyDictionary<int, float> LogitBias { get; init; } = EmptyBias;

    /// <summary>Fixes the random stream so equal requests give equal outputs; null draws a fresh seed.</summary>
    public ulong? Seed { get; init; }

    private static readonly IReadOnlyDictionary<int, float> EmptyBias = new Dictionary<int, float>();
}
