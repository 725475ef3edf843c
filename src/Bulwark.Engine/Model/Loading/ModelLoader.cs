using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Formats.Safetensors;

namespace Bulwark.Engine.Model.Loading;

/// <summary>
/// Loads a model from whatever the user points at: a GGUF file, a Hugging Face folder
/// (config.json + safetensors), or a folder holding a single GGUF file. Pickle checkpoints are
/// refused with the way to convert them; anything else is refused with what was expected.
/// </summary>
public static class ModelLoader
{
    public const string Expected = "expected a .gguf file or a Hugging Face folder with config.json and *.safetensors";

    /// <param name="load">How stored weights become running weights (<c>--quantize</c>); null keeps them as stored.</param>
    public static LlamaModel Load(string path, ModelLoadOptions? load = null)
    {
        var full = Path.GetFullPath(path);
        if (Directory.Exists(full)) return LoadFolder(full, load);
        if (!File.Exists(full)) throw new ModelFormatException(full, "path", $"does not exist ({Expected})");
        // The magic decides, not the name: old GGML-era files were often called .bin.
        if (StartsWithGgufMagic(full)) return GgufModelLoader.Load(full, load);
        if (PickleRefusal.IsPickle(full)) throw PickleRefusal.Refuse(full);
        if (full.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            throw new ModelFormatException(full, "path", "a safetensors file needs its config.json: pass the folder that holds both");
        throw new ModelFormatException(full, "format", $"is neither GGUF nor a model folder ({Expected})");
    }

    private static LlamaModel LoadFolder(string folder, ModelLoadOptions? load)
    {
        var files = Directory.GetFiles(folder);
        var safetensors = files.Where(f => f.EndsWith(".safetensors", StringComparison.Ordinal)).ToList();
        var hasIndex = File.Exists(Path.Combine(folder, SafetensorsIndex.FileName));
        if (safetensors.Count > 0 || hasIndex) return SafetensorsModelLoader.Load(folder, load);
        var ggufs = files.Where(f => f.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)).ToList();
        if (ggufs.Count == 1) return GgufModelLoader.Load(ggufs[0], load);
        if (ggufs.Count > 1)
            throw new ModelFormatException(folder, "path", $"holds {ggufs.Count} .gguf files; pass the one to load");
        var pickles = files.Where(PickleRefusal.HasPickleExtension).Order(StringComparer.Ordinal).ToList();
        if (pickles.Count > 0) throw PickleRefusal.Refuse(folder, pickles);
        throw new ModelFormatException(folder, "path", $"holds no model weights ({Expected})");
    }

    private static bool StartsWithGgufMagic(string path)
    {
        Span<byte> head = stackalloc byte[4];
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        return stream.ReadAtLeast(head, 4, throwOnEndOfStream: false) == 4 && "GGUF"u8.SequenceEqual(head);
    }
}
