using System.Text.Json;
using Bulwark.Engine.Formats.Safetensors;
using Bulwark.Engine.Tests.Formats;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Model;

/// <summary>Splits a one-file Hugging Face folder into N safetensors shards with an index, as transformers' save_pretrained does for big models.</summary>
internal static class Stories260KShards
{
    public static string Write(string sourceFolder, int shardCount)
    {
        var folder = Fixtures.NewTempDirectory("sharded-260k");
        File.Copy(Path.Combine(sourceFolder, "config.json"), Path.Combine(folder, "config.json"));
        using var source = SafetensorsFile.Open(Path.Combine(sourceFolder, "model.safetensors"));
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (var shard = 0; shard < shardCount; shard++)
        {
            var name = $"model-{shard + 1:D5}-of-{shardCount:D5}.safetensors";
            var tensors = source.Tensors.Where((_, i) => i % shardCount == shard)
                .Select(t => new SafetensorsBytes.Tensor(t.Name, t.DType, t.Shape, source.TensorBytes(t).ToArray()))
                .ToList();
            SafetensorsBytes.Write(SafetensorsBytes.Build(tensors), name, folder);
            foreach (var t in tensors) weightMap[t.Name] = name;
        }
        File.WriteAllText(Path.Combine(folder, SafetensorsIndex.FileName),
            JsonSerializer.Serialize(new { metadata = new { total_size = source.Tensors.Sum(t => t.ByteSize) }, weight_map = weightMap }));
        return folder;
    }
}
