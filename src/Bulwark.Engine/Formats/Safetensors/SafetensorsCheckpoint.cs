namespace Bulwark.Engine.Formats.Safetensors;

/// <summary>
/// The safetensors weights of a Hugging Face model folder: either one <c>model.safetensors</c>
/// (or a single <c>*.safetensors</c> file) or shards listed by <c>model.safetensors.index.json</c>.
/// For shards, every file the index names must exist in the folder, and every tensor must be in
/// exactly the shard the index names for it — no more, no fewer.
/// </summary>
public sealed class SafetensorsCheckpoint : IDisposable
{
    public const string SingleFileName = "model.safetensors";

    private readonly List<SafetensorsFile> _files;
    private readonly Dictionary<string, (SafetensorsFile File, SafetensorsTensorInfo Info)> _tensors;

    private SafetensorsCheckpoint(string folder, List<SafetensorsFile> files)
    {
        Folder = folder;
        _files = files;
        _tensors = new(StringComparer.Ordinal);
        foreach (var file in files)
        foreach (var tensor in file.Tensors)
            _tensors.Add(tensor.Name, (file, tensor));
    }

    public string Folder { get; }

    public IReadOnlyList<SafetensorsFile> Files => _files;

    public IEnumerable<string> TensorNames => _tensors.Keys;

    public bool TryGetTensor(string name, out SafetensorsFile file, out SafetensorsTensorInfo info)
    {
        if (_tensors.TryGetValue(name, out var entry))
        {
            (file, info) = entry;
            return true;
        }
        (file, info) = (null!, null!);
        return false;
    }

    public static SafetensorsCheckpoint Open(string folder, SafetensorsLimits? limits = null)
    {
        limits ??= SafetensorsLimits.Default;
        var full = Path.GetFullPath(folder);
        if (!Directory.Exists(full))
            throw new ModelFormatException(full, "folder", "does not exist or is not a folder");
        var indexPath = Path.Combine(full, SafetensorsIndex.FileName);
        if (File.Exists(indexPath)) return OpenSharded(full, SafetensorsIndex.Read(indexPath, limits), limits);

        var single = Path.Combine(full, SingleFileName);
        if (!File.Exists(single))
        {
            var candidates = Directory.GetFiles(full, "*.safetensors");
            single = candidates.Length switch
            {
                1 => candidates[0],
                0 => throw new ModelFormatException(full, "weights", $"the folder holds no {SingleFileName}, no {SafetensorsIndex.FileName} and no other .safetensors file"),
                _ => throw new ModelFormatException(full, "weights",
                    $"{candidates.Length} .safetensors files but no {SafetensorsIndex.FileName} to say which tensor is where"),
            };
        }
        var file = SafetensorsFile.Open(single, limits);
        return new SafetensorsCheckpoint(full, [file]);
    }

    private static SafetensorsCheckpoint OpenSharded(string folder, SafetensorsIndex index, SafetensorsLimits limits)
    {
        var files = new List<SafetensorsFile>(index.Shards.Count);
        var byShard = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        try
        {
            foreach (var shard in index.Shards)
            {
                var path = Path.Combine(folder, shard);
                if (!File.Exists(path))
                {
                    var example = index.WeightMap.First(kv => kv.Value == shard).Key;
                    throw new ModelFormatException(index.Path, $"weight_map.{ShownText.Of(example)}", $"shard \"{ShownText.Of(shard)}\" does not exist in {folder}");
                }
                var file = SafetensorsFile.Open(path, limits);
                files.Add(file);
                byShard.Add(shard, file);
                foreach (var tensor in file.Tensors)
                {
                    if (!index.WeightMap.TryGetValue(tensor.Name, out var named))
                        throw new ModelFormatException(file.Path, ShownText.Of(tensor.Name), $"tensor is not listed in {SafetensorsIndex.FileName}");
                    if (named != shard)
                        throw new ModelFormatException(file.Path, ShownText.Of(tensor.Name), $"tensor is in \"{shard}\" but {SafetensorsIndex.FileName} places it in \"{named}\"");
                }
            }
            foreach (var (tensor, shard) in index.WeightMap)
            {
                var file = byShard[shard];
                if (!file.TryGetTensor(tensor, out _))
                    throw new ModelFormatException(file.Path, ShownText.Of(tensor), $"tensor is missing although {SafetensorsIndex.FileName} places it in this shard");
            }
            return new SafetensorsCheckpoint(folder, files);
        }
        catch
        {
            foreach (var f in files) f.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        foreach (var file in _files) file.Dispose();
    }
}
