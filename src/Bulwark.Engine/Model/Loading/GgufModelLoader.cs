using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Kernels.Reference;
using Bulwark.Engine.Model.Config;

namespace Bulwark.Engine.Model.Loading;

/// <summary>
/// Reads a decoder's config and weights from a GGUF file, using llama.cpp's metadata keys
/// (<c>{arch}.embedding_length</c>, ...) and tensor names (<c>blk.N.attn_q.weight</c>, ...).
/// </summary>
public static unsafe class GgufModelLoader
{
    public static LlamaModel Load(string path, ModelLoadOptions? load = null)
    {
        var file = GgufFile.Open(path);
        try
        {
            var config = ReadConfig(file);
            var source = new GgufTensorSource(file);
            float[] factors = [];
            if (file.TryGetTensor("rope_freqs.weight", out var freqs))
            {
                if (freqs.Type != GgmlType.F32 || freqs.Dimensions.Length != 1 || freqs.Dimensions[0] != config.HeadDim / 2)
                    throw new ModelFormatException(path, "rope_freqs.weight", $"must be F32 [{config.HeadDim / 2}]; got {freqs.Type} [{string.Join(", ", freqs.Dimensions)}]");
                factors = new float[config.HeadDim / 2];
                Dequantize.F32(file.TensorBytes(freqs), factors);
                RopeFactorValues.Check(factors, path, "rope_freqs.weight");
            }
            var weights = new WeightsBuilder(config, source, TensorNames.Gguf, load).Build([file], factors);
            return new LlamaModel(config, weights);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public static LlamaConfig ReadConfig(GgufFile file)
    {
        var arch = file.GetString("general.architecture");
        var architecture = arch switch
        {
            "llama" => ModelArchitecture.Llama,
            "qwen2" => ModelArchitecture.Qwen2,
            "qwen3" => ModelArchitecture.Qwen3,
            "qwen3moe" => ModelArchitecture.Qwen3Moe,
            "smollm3" => ModelArchitecture.SmolLM3,
            "phi3" => ModelArchitecture.Phi3,
            "gemma2" => ModelArchitecture.Gemma2,
            "gemma3" => ModelArchitecture.Gemma3,
            _ => throw new ModelFormatException(file.Path, "general.architecture", $"\"{arch}\" is not supported (supported: llama, qwen2, qwen3, qwen3moe, smollm3, phi3, gemma2, gemma3)"),
        };
        int Int(string key, long? fallback = null)
        {
            var value = file.GetIntegerOrNull($"{arch}.{key}") ?? fallback
                ?? throw new ModelFormatException(file.Path, $"{arch}.{key}", "metadata key is missing");
            if (value < 0 || value > int.MaxValue)
                throw new ModelFormatException(file.Path, $"{arch}.{key}", $"must be between 0 and {int.MaxValue}; got {value}");
            return (int)value;
        }
        var embedding = Int("embedding_length");
        var heads = Int("attention.head_count");
        if (heads == 0) throw new ModelFormatException(file.Path, $"{arch}.attention.head_count", "must be at least 1; got 0");
        var headDim = Int("attention.key_length", embedding / heads);
        var ropeDim = Int("rope.dimension_count", headDim);
        if (ropeDim != headDim)
            throw new ModelFormatException(file.Path, $"{arch}.rope.dimension_count", $"partial RoPE is not supported: must equal head dim {headDim}; got {ropeDim}");
        if (!file.TryGetTensor("token_embd.weight", out var embd) || embd.Dimensions.Length != 2)
            throw new ModelFormatException(file.Path, "token_embd.weight", "tensor is missing or not 2-dimensional");
        var config = new LlamaConfig
        {
            Architecture = architecture,
            EmbeddingLength = embedding,
            LayerCount = Int("block_count"),
            HeadCount = heads,
            KeyValueHeadCount = Int("attention.head_count_kv", heads),
            HeadDim = headDim,
            FeedForwardLength = Int("feed_forward_length"),
            VocabularySize = (int)Math.Min(embd.Dimensions[1], int.MaxValue),
            ContextLength = Phi3Metadata.ContextLength(file, arch, Int("context_length")),
            RmsNormEpsilon = (float)(file.GetFloatOrNull($"{arch}.attention.layer_norm_rms_epsilon") ?? 1e-5),
            RopeTheta = (float)(file.GetFloatOrNull($"{arch}.rope.freq_base") ?? 10000.0),
            RopeScaling = architecture == ModelArchitecture.Phi3 ? Phi3Metadata.RopeScaling(file, arch, headDim, Int("context_length")) : ReadRopeScaling(file, arch),
            // llama.cpp rotates adjacent pairs for llama ("normal") and halves for qwen2/qwen3 ("neox");
            // its converter permutes Hugging Face q/k rows into the adjacent layout for llama only.
            // SmolLM3 is converted as llama is (permuted rows, adjacent pairs).
            RopeLayout = architecture is ModelArchitecture.Llama or ModelArchitecture.SmolLM3 ? RopeLayout.AdjacentPairs : RopeLayout.RotateHalf,
            TiedOutputHead = !file.TryGetTensor("output.weight", out _),
            HasQkvBias = architecture == ModelArchitecture.Qwen2,
            HasQkNorm = architecture is ModelArchitecture.Qwen3 or ModelArchitecture.Qwen3Moe or ModelArchitecture.Gemma3,
            Pooling = ReadPooling(file, arch),
            // llama.cpp fixes SmolLM3's step at 4; no GGUF key carries it.
            NoRopeLayerStep = architecture == ModelArchitecture.SmolLM3 ? 4 : 0,
        };
        if (architecture is ModelArchitecture.Gemma2 or ModelArchitecture.Gemma3)
            config = GgufGemma.Read(file, arch, config);
        config = ReadExperts(file, arch, config, Int);
        config.Validate(file.Path);
        return config;
    }

    /// <summary>
    /// <c>{arch}.expert_count</c> and <c>{arch}.expert_used_count</c> as llama.cpp reads them: a llama file with
    /// experts is Mixtral (experts as wide as <c>feed_forward_length</c>); qwen3moe must have them, its experts
    /// <c>expert_feed_forward_length</c> wide (llama.cpp's fallback: feed_forward_length / expert_used_count).
    /// llama.cpp's graph renormalises the chosen experts' weights for both. Checked by <see cref="LlamaConfig.Validate"/>.
    /// </summary>
    private static LlamaConfig ReadExperts(GgufFile file, string arch, LlamaConfig config, Func<string, long?, int> read)
    {
        var moe = config.Architecture == ModelArchitecture.Qwen3Moe;
        if (!moe && config.Architecture != ModelArchitecture.Llama)
        {
            if (file.GetIntegerOrNull($"{arch}.expert_count") is > 0 and var experts)
                throw new ModelFormatException(file.Path, $"{arch}.expert_count", $"{experts} experts are not supported for {arch} (mixtures of experts: llama (Mixtral), qwen3moe)");
            return config;
        }
        var count = read("expert_count", moe ? null : 0);
        var used = read("expert_used_count", moe ? null : 0);
        if (count == 0 && used == 0 && !moe) return config;
        var width = moe ? read("expert_feed_forward_length", used > 0 ? config.FeedForwardLength / used : config.FeedForwardLength) : config.FeedForwardLength;
        return config with
        {
            Architecture = moe ? config.Architecture : ModelArchitecture.Mixtral,
            ExpertCount = count,
            ExpertsUsed = used,
            ExpertFeedForwardLength = width,
            NormalizeExpertWeights = true,
        };
    }

    /// <summary>llama.cpp's <c>{arch}.pooling_type</c> (absent: a generator); rank pooling needs a classifier head the decoder lacks.</summary>
    private static PoolingType ReadPooling(GgufFile file, string arch)
    {
        var key = $"{arch}.pooling_type";
        var value = file.GetIntegerOrNull(key);
        return value switch
        {
            null => PoolingType.None,
            >= 0 and <= 3 => (PoolingType)value.Value,
            4 => throw new ModelFormatException(file.Path, key, "4 (rank: a reranker's classification head) is not supported (supported: 0 none, 1 mean, 2 cls, 3 last)"),
            _ => throw new ModelFormatException(file.Path, key, $"must be 0 (none), 1 (mean), 2 (cls) or 3 (last); got {value}"),
        };
    }

    private static RopeScaling ReadRopeScaling(GgufFile file, string arch)
    {
        var kind = file.GetStringOrNull($"{arch}.rope.scaling.type");
        var factor = (float)(file.GetFloatOrNull($"{arch}.rope.scaling.factor") ?? 1.0);
        return kind switch
        {
            null or "none" => RopeScaling.None,
            "linear" when factor > 0 => new RopeScaling(RopeScalingKind.Linear, factor),
            // Llama 3 scaling arrives as the rope_freqs.weight tensor, not as a type.
            _ => throw new ModelFormatException(file.Path, $"{arch}.rope.scaling.type", $"\"{kind}\" with factor {factor} is not supported (supported: none, linear)"),
        };
    }

    private sealed class GgufTensorSource(GgufFile file) : ITensorSource
    {
        public string Location => file.Path;

        public bool IsFileMapped => true;

        public bool TryGet(string name, out TensorView tensor)
        {
            if (!file.TryGetTensor(name, out var info))
            {
                tensor = default;
                return false;
            }
            // GGUF stores dimensions innermost-first; views are outermost-first.
            tensor = new TensorView(name, info.Type, info.Dimensions.Reverse().ToArray(), file.TensorPointer(info), info.ByteSize)
            {
                FilePath = file.Path,
                FileOffset = info.FileOffset,
            };
            return true;
        }
    }
}
