namespace Bulwark.Engine.Formats.Safetensors;

/// <summary>
/// Bounds on a safetensors header beyond "the bytes must exist": a hostile file cannot make the
/// reader parse a giant JSON document or build millions of objects.
/// </summary>
public sealed record SafetensorsLimits
{
    public static readonly SafetensorsLimits Default = new();

    /// <summary>
    /// Largest JSON header, in bytes. Hugging Face's own reader uses the same 100 MB cap; real
    /// headers are a few hundred kilobytes even for 400B-parameter checkpoints.
    /// </summary>
    public long MaxHeaderBytes { get; init; } = 100L * 1024 * 1024;

    public int MaxTensors { get; init; } = 1_000_000;

    /// <summary>Real weights have 1 to 4 dimensions.</summary>
    public int MaxDimensions { get; init; } = 8;

    /// <summary>Entries of the free-form <c>__metadata__</c> string map.</summary>
    public int MaxMetadataEntries { get; init; } = 65_536;

    /// <summary>Largest <c>model.safetensors.index.json</c>, in bytes (real ones are ~100 KB).</summary>
    public long MaxIndexBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>Shard files one index may name (the largest public checkpoints have a few hundred).</summary>
    public int MaxShards { get; init; } = 10_000;
}
