namespace Bulwark.Engine.KvCache;

/// <summary>How the paged KV cache stores keys and values.</summary>
public enum KvCacheType
{
    /// <summary>32-bit floats: exactly the values computed (the default).</summary>
    F32,

    /// <summary>16-bit floats, as llama.cpp stores its cache by default: half the memory, rounded to 11 significant bits.</summary>
    F16,
}

/// <summary>The names of <see cref="KvCacheType"/> in flags and settings: <c>f32</c>, <c>f16</c> (any case, spaces trimmed).</summary>
public static class KvCacheTypeNames
{
    public static bool TryParse(string? text, out KvCacheType type)
    {
        switch (text?.Trim().ToLowerInvariant())
        {
            case "f32": type = KvCacheType.F32; return true;
            case "f16": type = KvCacheType.F16; return true;
            default: type = KvCacheType.F32; return false;
        }
    }
}
