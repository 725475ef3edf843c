using System.Text.Json;
using Bulwark.Engine.Formats;

namespace Bulwark.Engine.Model.Config;

/// <summary>
/// The pooling a Hugging Face embedding model declares in sentence-transformers' <c>1_Pooling/config.json</c>
/// (<c>pooling_mode_mean_tokens</c>, <c>pooling_mode_cls_token</c>, <c>pooling_mode_lasttoken</c>). A folder
/// without it is a generator (<see cref="PoolingType.None"/>). Modes the decoder cannot reproduce (max,
/// weighted mean, several at once) are refused by name rather than pooled differently.
/// </summary>
public static class SentenceTransformersPooling
{
    public const string RelativePath = "1_Pooling/config.json";

    /// <summary>Pooling configs are a few hundred bytes; this keeps a hostile one from filling memory.</summary>
    public const long MaxBytes = 64 * 1024;

    public static PoolingType Read(string folder)
    {
        var path = Path.Combine(folder, RelativePath);
        if (!File.Exists(path)) return PoolingType.None;
        var size = new FileInfo(path).Length;
        if (size > MaxBytes) throw new ModelFormatException(path, "size", $"{size} bytes exceeds the limit of {MaxBytes}");
        return Parse(File.ReadAllBytes(path), path);
    }

    public static PoolingType Parse(ReadOnlyMemory<byte> json, string source)
    {
        using var document = HfConfig.ParseObject(json, source, maxDepth: 8);
        var f = new HfConfigFields(document.RootElement, source);
        foreach (var unsupported in new[] { "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens" })
            if (f.Bool(unsupported, false))
                throw f.Error(unsupported, "true is not supported (supported: pooling_mode_mean_tokens, pooling_mode_cls_token, pooling_mode_lasttoken)");
        var modes = new List<PoolingType>();
        if (f.Bool("pooling_mode_mean_tokens", false)) modes.Add(PoolingType.Mean);
        if (f.Bool("pooling_mode_cls_token", false)) modes.Add(PoolingType.Cls);
        if (f.Bool("pooling_mode_lasttoken", false)) modes.Add(PoolingType.Last);
        return modes.Count switch
        {
            0 => throw f.Error("pooling_mode_mean_tokens", "no pooling mode is true (one of pooling_mode_mean_tokens, pooling_mode_cls_token, pooling_mode_lasttoken must be)"),
            1 => modes[0],
            _ => throw f.Error("pooling_mode_mean_tokens", $"several pooling modes are true ({string.Join(", ", modes.Select(PoolingTypeNames.Name))}); their concatenation is not supported"),
        };
    }
}
