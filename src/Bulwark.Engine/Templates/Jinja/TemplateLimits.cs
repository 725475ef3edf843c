namespace Bulwark.Engine.Templates.Jinja;

/// <summary>
/// Bounds that stop a hostile template (one shipped inside a downloaded model, say) from
/// exhausting CPU, memory or the stack. The defaults leave every real chat template far inside
/// them: the largest known ones render a long conversation in well under 1,000 loop iterations.
/// </summary>
public sealed record TemplateLimits
{
    public static TemplateLimits Default { get; } = new();

    /// <summary>Longest template source accepted, in characters.</summary>
    public int MaxSourceLength { get; init; } = 256 * 1024;

    /// <summary>Longest rendering, and longest string any expression may build, in characters.</summary>
    public int MaxOutputLength { get; init; } = 4 * 1024 * 1024;

    /// <summary>Loop iterations allowed in one rendering, summed over every loop.</summary>
    public int MaxLoopIterations { get; init; } = 100_000;

    /// <summary>Statements executed plus functions, filters and macros called in one rendering.</summary>
    public int MaxOperations { get; init; } = 2_000_000;

    /// <summary>Deepest macro call chain (macros may recurse).</summary>
    public int MaxCallDepth { get; init; } = 64;

    /// <summary>Deepest nesting of blocks and expressions in the source, and of values built by it.</summary>
    public int MaxNestingDepth { get; init; } = 128;

    /// <summary>Most items a list, range or dict built by the template may hold.</summary>
    public int MaxCollectionLength { get; init; } = 100_000;

    internal void Validate()
    {
        Check(MaxSourceLength, nameof(MaxSourceLength));
        Check(MaxOutputLength, nameof(MaxOutputLength));
        Check(MaxLoopIterations, nameof(MaxLoopIterations));
        Check(MaxOperations, nameof(MaxOperations));
        Check(MaxCallDepth, nameof(MaxCallDepth));
        Check(MaxNestingDepth, nameof(MaxNestingDepth));
        Check(MaxCollectionLength, nameof(MaxCollectionLength));
    }

    private static void Check(int value, string name)
    {
        if (value < 1)
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be at least 1; got {value}");
    }
}
