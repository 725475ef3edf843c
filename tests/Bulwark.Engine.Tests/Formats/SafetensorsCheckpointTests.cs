using System.Text.Json;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Safetensors;
using Bulwark.Testing;
using static Bulwark.Engine.Tests.Formats.SafetensorsBytes;

namespace Bulwark.Engine.Tests.Formats;

public class SafetensorsCheckpointTests
{
    private const string ShardA = "model-00001-of-00002.safetensors", ShardB = "model-00002-of-00002.safetensors";

    /// <summary>A folder with two shards (a, b in the first; c in the second) and an index saying so unless overridden.</summary>
    private static string ShardedFolder(Dictionary<string, string>? weightMap = null, string? rawIndex = null)
    {
        var folder = Fixtures.NewTempDirectory("sharded");
        Write(SafetensorsBytes.Build([F32("a", [2], 1, 2), F32("b", [1], 3)]), ShardA, folder);
        Write(SafetensorsBytes.Build([F32("c", [3], 4, 5, 6)]), ShardB, folder);
        weightMap ??= new() { ["a"] = ShardA, ["b"] = ShardA, ["c"] = ShardB };
        File.WriteAllText(Path.Combine(folder, SafetensorsIndex.FileName),
            rawIndex ?? JsonSerializer.Serialize(new { metadata = new { total_size = 24 }, weight_map = weightMap }));
        return folder;
    }

    private static ModelFormatException Refused(string folder) =>
        Assert.Throws<ModelFormatException>(() => SafetensorsCheckpoint.Open(folder).Dispose());

    [Fact]
    public void ShardedCheckpointFindsEveryTensorInItsShard()
    {
        using var checkpoint = SafetensorsCheckpoint.Open(ShardedFolder());
        Assert.Equal(2, checkpoint.Files.Count);
        Assert.Equal(new[] { "a", "b", "c" }, checkpoint.TensorNames.Order());
        Assert.True(checkpoint.TryGetTensor("c", out var file, out var info));
        Assert.Equal(ShardB, Path.GetFileName(file.Path));
        Assert.Equal(new long[] { 3 }, info.Shape);
        Assert.False(checkpoint.TryGetTensor("d", out _, out _));
    }

    [Fact]
    public void SingleFileFolderNeedsNoIndex()
    {
        var folder = Fixtures.NewTempDirectory("single");
        Write(SafetensorsBytes.Build([F32("a", [1], 1)]), "model.safetensors", folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), "{}");
        using var checkpoint = SafetensorsCheckpoint.Open(folder);
        Assert.True(checkpoint.TryGetTensor("a", out _, out _));
    }

    [Fact]
    public void SeveralFilesWithoutAnIndexAreRefused()
    {
        var folder = Fixtures.NewTempDirectory("noindex");
        Write(SafetensorsBytes.Build([F32("a", [1], 1)]), ShardA, folder);
        Write(SafetensorsBytes.Build([F32("b", [1], 1)]), ShardB, folder);
        Assert.Contains("2 .safetensors files but no model.safetensors.index.json", Refused(folder).Message);
    }

    [Fact]
    public void FolderWithoutWeightsIsRefused() =>
        Assert.Contains("no model.safetensors", Refused(Fixtures.NewTempDirectory("empty")).Message);

    [Theory]
    [InlineData("../model-00002-of-00002.safetensors")]
    [InlineData("sub/model.safetensors")]
    [InlineData("sub\\model.safetensors")]
    [InlineData("/etc/passwd.safetensors")]
    [InlineData("..")]
    [InlineData("")]
    [InlineData("C:model.safetensors")]
    public void ShardNamesThatCouldLeaveTheFolderAreRefused(string shard)
    {
        var e = Refused(ShardedFolder(new() { ["a"] = ShardA, ["b"] = ShardA, ["c"] = shard }));
        Assert.Contains("weight_map.c", e.Message);
        Assert.Contains("must be a plain file name inside the model folder", e.Message);
    }

    [Fact]
    public void ShardsMustBeSafetensorsFiles()
    {
        var e = Refused(ShardedFolder(new() { ["a"] = ShardA, ["b"] = ShardA, ["c"] = "pytorch_model.bin" }));
        Assert.Contains("must be a .safetensors file", e.Message);
    }

    [Fact]
    public void MissingShardIsRefused()
    {
        var folder = ShardedFolder();
        File.Delete(Path.Combine(folder, ShardB));
        var e = Refused(folder);
        Assert.Contains($"shard \"{ShardB}\" does not exist", e.Message);
    }

    [Fact]
    public void TensorInAnotherShardThanTheIndexSaysIsRefused()
    {
        var e = Refused(ShardedFolder(new() { ["a"] = ShardA, ["b"] = ShardB, ["c"] = ShardB }));
        Assert.Contains($"b: tensor is in \"{ShardA}\" but model.safetensors.index.json places it in \"{ShardB}\"", e.Message);
    }

    [Fact]
    public void TensorMissingFromTheIndexIsRefused()
    {
        var e = Refused(ShardedFolder(new() { ["a"] = ShardA, ["c"] = ShardB }));
        Assert.Contains("b: tensor is not listed in model.safetensors.index.json", e.Message);
    }

    [Fact]
    public void IndexedTensorMissingFromItsShardIsRefused()
    {
        var e = Refused(ShardedFolder(new() { ["a"] = ShardA, ["b"] = ShardA, ["c"] = ShardB, ["d"] = ShardB }));
        Assert.Contains("d: tensor is missing although model.safetensors.index.json places it in this shard", e.Message);
    }

    [Theory]
    [InlineData("""{"metadata":{}}""", "weight_map: is missing")]
    [InlineData("""{"weight_map":{}}""", "weight_map: names no tensors")]
    [InlineData("""{"weight_map":{"a":1}}""", "must be a shard file name")]
    [InlineData("""{"weight_map":{"a":"model-00001-of-00002.safetensors","a":"model-00001-of-00002.safetensors"}}""", "tensor appears twice")]
    [InlineData("""{"weight_map":[]}""", "must be an object")]
    [InlineData("""[]""", "must be a JSON object")]
    [InlineData("""{"weight_map":{"a":"model-00001-of-00002.safetensors"}""", "index")]
    [InlineData("""{"metadata":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]],"weight_map":{}}""", "is not valid JSON")]
    public void MalformedIndexesAreRefused(string index, string expected)
    {
        var e = Refused(ShardedFolder(rawIndex: index));
        Assert.StartsWith("model.safetensors.index.json: ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void ShardCountIsLimitedAtTheLimitAndAbove()
    {
        var folder = ShardedFolder();
        SafetensorsCheckpoint.Open(folder, new SafetensorsLimits { MaxShards = 2 }).Dispose();
        var e = Assert.Throws<ModelFormatException>(() => SafetensorsCheckpoint.Open(folder, new SafetensorsLimits { MaxShards = 1 }));
        Assert.Contains("more than the limit of 1 shard files", e.Message);
    }

    [Fact]
    public void IndexSizeIsLimitedAtTheLimitAndAbove()
    {
        var folder = ShardedFolder();
        var size = new FileInfo(Path.Combine(folder, SafetensorsIndex.FileName)).Length;
        SafetensorsCheckpoint.Open(folder, new SafetensorsLimits { MaxIndexBytes = size }).Dispose();
        var e = Assert.Throws<ModelFormatException>(() => SafetensorsCheckpoint.Open(folder, new SafetensorsLimits { MaxIndexBytes = size - 1 }));
        Assert.Contains($"{size} bytes exceeds the limit of {size - 1}", e.Message);
    }
}
