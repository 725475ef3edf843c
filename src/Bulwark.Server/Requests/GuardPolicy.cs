namespace Bulwark.Server.Requests;

/// <summary>What the input guard does with a request (per key or tenant; configuration <c>Bulwark:Guardrails:Input</c>).</summary>
public enum GuardPolicy
{
    /// <summary>Neither sanitized nor scanned.</summary>
    Off,

    /// <summary>Sanitized and scanned; verdicts are counted and audited, the request always goes on.</summary>
    Flag,

    /// <summary>As <see cref="Flag"/>, and a request scoring at or above the block threshold is refused with 400 <c>prompt_injection</c>.</summary>
    Block,
}

public static class GuardPolicyNames
{
    /// <summary>Parses <c>off | flag | block</c> (any case); the error names <paramref name="field"/> and the value.</summary>
    public static GuardPolicy Parse(string? value, string field) => value?.Trim().ToLowerInvariant() switch
    {
        "off" => GuardPolicy.Off,
        "flag" => GuardPolicy.Flag,
        "block" => GuardPolicy.Block,
        _ => throw new FormatException($"{field} must be one of off, flag, block; got '{value}'"),
    };

    /// <summary>As <see cref="Parse"/>, but the error is an <see cref="ArgumentException"/> (what key validation reports as 400 / exit 1).</summary>
    public static GuardPolicy ParseForKey(string value, string field)
    {
        try
        {
            return Parse(value, field);
        }
        catch (FormatException e)
        {
            throw new ArgumentException(e.Message);
        }
    }

    public static string Name(this GuardPolicy policy) => policy.ToString().ToLowerInvariant();
}
