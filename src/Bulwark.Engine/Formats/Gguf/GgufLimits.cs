namespace Bulwark.Engine.Formats.Gguf;

/// <summary>
/// Bounds on the header's shape beyond "the bytes must exist": they keep a hostile file from
/// making the reader recurse deeply or build millions of tiny objects.
/// </summary>
public sealed record GgufLimits
{
    public static readonly GgufLimits Default = new();

    /// <summary>Arrays of arrays deeper than this are refused (real files use depth 1).</summary>
    public int MaxArrayDepth { get; init; } = 4;

    /// <summary>Largest metadata array (the biggest vocabularies have ~260k entries).</summary>
    public int MaxArrayLength { get; init; } = 16 * 1024 * 1024;

    public int MaxMetadataEntries { get; init; } = 65_536;

    public int MaxTensors { get; init; } = 1_000_000;

    /// <summary>ggml supports at most 4 dimensions (GGML_MAX_DIMS).</summary>
    public int MaxDimensions { get; init; } = 4;
}
