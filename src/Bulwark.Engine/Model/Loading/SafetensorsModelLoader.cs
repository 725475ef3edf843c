using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Safetensors;
using Bulwark.Engine.Model.Config;

namespace Bulwark.Engine.Model.Loading;

/// <summary>
/// Loads a Hugging Face model folder: <c>config.json</c> plus safetensors weights (one file or
/// shards) under transformers' tensor names. Matrices stay in the memory map in their stored type
/// (F32, F16 or BF16); RoPE rotates halves, as every Hugging Face checkpoint expects.
/// </summary>
public static unsafe class SafetensorsModelLoader
{
    public static LlamaModel Load(string folder, ModelLoadOptions? load = null)
    {
        var full = Path.GetFullPath(folder);
        var configPath = Path.Combine(full, HfConfig.FileName);
        if (!File.Exists(configPath))
            throw new ModelFormatException(full, HfConfig.FileName, "is missing: a safetensors model is a Hugging Face folder with config.json beside the weights");
        var config = HfConfig.Read(configPath) with { Pooling = SentenceTransformersPooling.Read(full) };
        var checkpoint = SafetensorsCheckpoint.Open(full);
        try
        {
            var weights = new WeightsBuilder(config, new CheckpointSource(checkpoint), TensorNames.HuggingFaceFor(config), load).Build([checkpoint]);
            return new LlamaModel(config, weights);
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    private sealed class CheckpointSource(SafetensorsCheckpoint checkpoint) : ITensorSource
    {
        public string Location => checkpoint.Folder;

        public bool IsFileMapped => true;

        public bool TryGet(string name, out TensorView tensor)
        {
            if (!checkpoint.TryGetTensor(name, out var file, out var info))
            {
                tensor = default;
                return false;
            }
            // safetensors, like PyTorch, stores shapes outermost first: no reversal.
            tensor = new TensorView(name, info.Type, info.Shape, file.TensorPointer(info), info.ByteSize)
            {
                FilePath = file.Path,
                FileOffset = info.FileOffset,
            };
            return true;
        }
    }
}
