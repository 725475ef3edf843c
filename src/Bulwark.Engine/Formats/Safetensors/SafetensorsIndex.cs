using System.Text.Json;

namespace Bulwark.Engine.Formats.Safetensors;

/// <summary>
/// <c>model.safetensors.index.json</c> of a sharded checkpoint: <c>{"metadata": {...},
/// "weight_map": {tensor name: shard file name}}</c>. Shard names are bare file names inside the
/// checkpoint folder; anything that could point elsewhere (a path, "..", an absolute path) is refused.
/// </summary>
public sealed class SafetensorsIndex
{
    public const string FileName = "model.safetensors.index.json";

    private SafetensorsIndex(string path, Dictionary<string, string> weightMap)
    {
        Path = path;
        WeightMap = weightMap;
        Shards = weightMap.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
    }

    public string Path { get; }

    /// <summary>Tensor name → shard file name (no directory part).</summary>
    public IReadOnlyDictionary<string, string> WeightMap { get; }

    /// <summary>Distinct shard file names, sorted.</summary>
    public IReadOnlyList<string> Shards { get; }

    public static SafetensorsIndex Read(string path, SafetensorsLimits? limits = null)
    {
        limits ??= SafetensorsLimits.Default;
        var full = System.IO.Path.GetFullPath(path);
        var size = new FileInfo(full).Length;
        if (size > limits.MaxIndexBytes)
            throw new ModelFormatException(full, "index", $"{size} bytes exceeds the limit of {limits.MaxIndexBytes}");
        var bytes = File.ReadAllBytes(full);
        var weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
        var shards = new HashSet<string>(StringComparer.Ordinal);
        var seenWeightMap = false;
        // metadata may hold anything (total_size, ...): it is skipped, but nesting stays bounded.
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { MaxDepth = 16 });
        try
        {
            if (JsonTokens.Next(ref reader, full, "index") != JsonTokenType.StartObject)
                throw new ModelFormatException(full, "index", $"must be a JSON object; got {reader.TokenType}");
            while (JsonTokens.Next(ref reader, full, "index") == JsonTokenType.PropertyName)
            {
                var key = JsonTokens.Text(ref reader, full, "index key");
                if (key != "weight_map")
                {
                    JsonTokens.Next(ref reader, full, key);
                    reader.Skip();
                    continue;
                }
                if (seenWeightMap) throw new ModelFormatException(full, "weight_map", "appears twice");
                seenWeightMap = true;
                if (JsonTokens.Next(ref reader, full, "weight_map") != JsonTokenType.StartObject)
                    throw new ModelFormatException(full, "weight_map", $"must be an object of tensor name → shard file; got {reader.TokenType}");
                while (JsonTokens.Next(ref reader, full, "weight_map") == JsonTokenType.PropertyName)
                {
                    var tensor = JsonTokens.Text(ref reader, full, "weight_map key");
                    var field = $"weight_map.{ShownText.Of(tensor)}";
                    if (JsonTokens.Next(ref reader, full, field) != JsonTokenType.String)
                        throw new ModelFormatException(full, field, $"must be a shard file name; got {reader.TokenType}");
                    var shard = JsonTokens.Text(ref reader, full, field);
                    CheckShardName(full, field, shard);
                    if (shards.Add(shard) && shards.Count > limits.MaxShards)
                        throw new ModelFormatException(full, "weight_map", $"names more than the limit of {limits.MaxShards} shard files");
                    if (weightMap.Count == limits.MaxTensors)
                        throw new ModelFormatException(full, "weight_map", $"more than the limit of {limits.MaxTensors} tensors");
                    if (!weightMap.TryAdd(tensor, shard))
                        throw new ModelFormatException(full, field, "tensor appears twice");
                }
            }
            while (reader.Read()) { }
        }
        catch (JsonException e)
        {
            throw new ModelFormatException(full, "index", $"is not valid JSON: {e.Message}", e);
        }
        if (!seenWeightMap) throw new ModelFormatException(full, "weight_map", "is missing");
        if (weightMap.Count == 0) throw new ModelFormatException(full, "weight_map", "names no tensors");
        return new SafetensorsIndex(full, weightMap);
    }

    /// <summary>A shard must be a plain file name ending in .safetensors, so it can only name a file in the same folder.</summary>
    private static void CheckShardName(string file, string field, string shard)
    {
        var shown = ShownText.Of(shard);
        if (shard.Length == 0 || shard.Length > 255
            || shard.IndexOfAny(['/', '\\', ':']) >= 0
            || shard.Any(char.IsControl)
            || shard is "." or ".."
            || System.IO.Path.IsPathRooted(shard)
            || System.IO.Path.GetFileName(shard) != shard)
            throw new ModelFormatException(file, field, $"shard \"{shown}\" must be a plain file name inside the model folder (no directories, no \"..\")");
        if (!shard.EndsWith(".safetensors", StringComparison.Ordinal))
            throw new ModelFormatException(file, field, $"shard \"{shown}\" must be a .safetensors file");
    }
}
