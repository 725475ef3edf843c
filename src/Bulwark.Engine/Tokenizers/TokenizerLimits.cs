namespace Bulwark.Engine.Tokenizers;

/// <summary>Bounds on what one Encode call accepts, so a hostile request cannot pin a core.</summary>
public sealed record TokenizerLimits
{
    public static readonly TokenizerLimits Default = new();

    /// <summary>Largest input, in UTF-8 bytes, one Encode call accepts (default 16 MiB).</summary>
    public int MaxInputBytes { get; init; } = 16 * 1024 * 1024;

    internal void CheckInputLength(long utf8Bytes)
    {
        if (utf8Bytes > MaxInputBytes)
            throw new TokenizerInputTooLongException(utf8Bytes, MaxInputBytes);
    }
}

/// <summary>The text given to Encode is longer than <see cref="TokenizerLimits.MaxInputBytes"/>.</summary>
public sealed class TokenizerInputTooLongException(long length, int limit)
    : ArgumentException($"text must be at most {limit} UTF-8 bytes; got {length}", "text")
{
    public long Length { get; } = length;
    public int Limit { get; } = limit;
}
