using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Formats.Safetensors;
using Bulwark.Engine.Kernels.Reference;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Templates;
using Bulwark.Engine.Tokenizers;
using Bulwark.Engine.Tokenizers.ByteLevel;
using Bulwark.Engine.Tokenizers.Loading;

namespace Bulwark.Engine.Conversion;

/// <summary>
/// Converts a Hugging Face folder (config.json, safetensors, tokenizer files) into one GGUF file
/// as llama.cpp's <c>convert_hf_to_gguf.py</c> lays it out: llama.cpp's metadata keys and tensor
/// names, matrices in their stored type (F32/F16/BF16), norms and biases as F32, llama/Mistral q/k
/// rows permuted from rotate-half into adjacent pairs, and the tokenizer and chat template as
/// <c>tokenizer.*</c> metadata. Loading the result computes what loading the folder computes.
/// Only what <see cref="SafetensorsModelLoader"/> itself loads is converted; anything else is
/// refused naming the field.
/// </summary>
public static unsafe class HuggingFaceToGguf
{
    /// <param name="progress">Bytes of tensor data written so far.</param>
    /// <exception cref="ModelFormatException">The folder is not a model Bulwark loads, or has a feature GGUF export does not cover.</exception>
    public static void Convert(string folder, string destination, IProgress<long>? progress = null, CancellationToken ct = default)
    {
        var full = Path.GetFullPath(folder);
        var configPath = Path.Combine(full, HfConfig.FileName);
        if (!File.Exists(configPath))
            throw new ModelFormatException(full, HfConfig.FileName, "is missing: a Hugging Face model folder has config.json beside the weights");
        var config = HfConfig.Read(configPath);
        if (config.Int4 is { } int4)
            throw new ModelFormatException(full, "quantization_config", $"{int4} checkpoints are not converted to GGUF (serve the folder itself: its weights are repacked to Q4_1 at load)");
        var tokenizer = ReadTokenizer(full);
        var arch = config.Architecture switch
        {
            // llama.cpp labels Mistral checkpoints "llama" (the same decoder, adjacent-pair RoPE in GGUF).
            ModelArchitecture.Llama or ModelArchitecture.Mistral => "llama",
            ModelArchitecture.Qwen2 => "qwen2",
            ModelArchitecture.Qwen3 => "qwen3",
            // llama.cpp labels Mixtral "llama" too, with expert counts; both renormalise the chosen experts' weights.
            ModelArchitecture.Mixtral => "llama",
            ModelArchitecture.Qwen3Moe when config.NormalizeExpertWeights => "qwen3moe",
            ModelArchitecture.Qwen3Moe => throw new ModelFormatException(configPath, "norm_topk_prob", "false cannot be written as GGUF (llama.cpp's qwen3moe always renormalises the chosen experts' weights)"),
            ModelArchitecture.SmolLM3 when config.NoRopeLayerStep == 4 => "smollm3",
            ModelArchitecture.Phi3 => "phi3",
            ModelArchitecture.Gemma2 => "gemma2",
            ModelArchitecture.Gemma3 => "gemma3",
            // llama.cpp fixes SmolLM3's step at 4 and reads none from the file.
            ModelArchitecture.SmolLM3 => throw new ModelFormatException(configPath, "no_rope_layer_interval", $"{config.NoRopeLayerStep} cannot be written as GGUF (llama.cpp always skips RoPE in every 4th layer)"),
            _ => throw new ModelFormatException(configPath, "model_type", $"{config.Architecture} cannot be written as GGUF"),
        };
        if (config.Gemma is not null) GemmaToGguf.Check(config, arch, configPath);
        var permuteQk = arch is "llama" or "smollm3";

        using var checkpoint = SafetensorsCheckpoint.Open(full);
        var matrices = Tensors(config).ToList();
        var matrixType = Find(checkpoint, TensorNames.HuggingFaceFor(config).TokenEmbedding).Info.Type;
        var writer = new GgufWriter()
            .Add("general.architecture", arch)
            .Add("general.name", Path.GetFileName(full.TrimEnd(Path.DirectorySeparatorChar)))
            .Add("general.file_type", GgmlTypes.LlamaFileType(matrixType))
            .Add("general.alignment", (uint)GgufFile.DefaultAlignment)
            // GGUF llama carries no window (llama.cpp attends to everything), so a windowed Mistral stays exact only up to its window.
            .Add($"{arch}.context_length", (uint)(config.SlidingWindow > 0 && config.Gemma is null ? Math.Min(config.ContextLength, config.SlidingWindow) : config.ContextLength))
            .Add($"{arch}.embedding_length", (uint)config.EmbeddingLength)
            .Add($"{arch}.block_count", (uint)config.LayerCount)
            .Add($"{arch}.feed_forward_length", (uint)config.FeedForwardLength)
            .Add($"{arch}.attention.head_count", (uint)config.HeadCount)
            .Add($"{arch}.attention.head_count_kv", (uint)config.KeyValueHeadCount)
            .Add($"{arch}.attention.layer_norm_rms_epsilon", config.RmsNormEpsilon)
            .Add($"{arch}.rope.freq_base", config.RopeTheta)
            .Add($"{arch}.rope.dimension_count", (uint)config.HeadDim)
            .Add($"{arch}.vocab_size", (uint)config.VocabularySize);
        if (config.HeadDim != config.EmbeddingLength / config.HeadCount || config.Gemma is not null)
            writer.Add($"{arch}.attention.key_length", (uint)config.HeadDim).Add($"{arch}.attention.value_length", (uint)config.HeadDim);
        if (config.Gemma is not null) GemmaToGguf.AddMetadata(writer, config, arch);
        if (config.IsMixtureOfExperts)
        {
            writer.Add($"{arch}.expert_count", (uint)config.ExpertCount).Add($"{arch}.expert_used_count", (uint)config.ExpertsUsed);
            if (arch == "qwen3moe") writer.Add($"{arch}.expert_feed_forward_length", (uint)config.ExpertFeedForwardLength);
        }
        if (config.RopeScaling.Kind == RopeScalingKind.Linear)
            writer.Add($"{arch}.rope.scaling.type", "linear").Add($"{arch}.rope.scaling.factor", config.RopeScaling.Factor);
        if (config.RopeScaling.Kind == RopeScalingKind.Llama3)
        {
            // As llama.cpp's converter: the scaling becomes per-pair divisors of the frequencies, not metadata.
            Synthesis.SyntheticRope.AddFactors(writer, "rope_freqs.weight", config.RopeScaling.Llama3FrequencyFactors(config.HeadDim, config.RopeTheta));
        }
        if (config.RopeScaling.Kind == RopeScalingKind.LongRope)
            Synthesis.SyntheticRope.AddLongRope(writer, arch, config.RopeScaling, config.RopeScaling.AttentionFactor);
        writer.AddTokenizer(tokenizer);
        if (ChatTemplate(full) is { } template) writer.Add("tokenizer.chat_template", template);

        long written = 0;
        foreach (var (hfName, ggufName, heads) in matrices)
        {
            if (hfName.StartsWith(ExpertsPrefix, StringComparison.Ordinal))
            {
                written = WriteMergedExperts(writer, checkpoint, config, hfName[ExpertsPrefix.Length..], ggufName, written, progress, ct);
                continue;
            }
            var (file, info) = Find(checkpoint, hfName);
            var source = file.TensorPointer(info);
            // GGUF dimensions are innermost-first.
            var dims = info.Shape.Reverse().ToArray();
            if (info.Shape.Length == 1 || ggufName.EndsWith("." + TensorNames.Router, StringComparison.Ordinal))
            {
                // Norms, biases and the experts' router: F32, as llama.cpp's converter stores them.
                var values = new float[info.Shape.Aggregate(1L, (a, b) => a * b)];
                Dequantize.Row(info.Type, new ReadOnlySpan<byte>(source, checked((int)info.ByteSize)), values);
                // Hugging Face Gemma stores w and applies 1 + w; llama.cpp's converter writes 1 + w.
                if (config.Gemma is not null && ggufName.EndsWith("norm.weight", StringComparison.Ordinal))
                    for (var i = 0; i < values.Length; i++) values[i] += 1f;
                writer.AddTensor(ggufName, GgmlType.F32, dims, Quantize.Tensor(GgmlType.F32, values, checked((int)info.Shape[^1])));
                progress?.Report(written += values.Length * 4L);
                continue;
            }
            var rows = info.Shape[0];
            var rowBytes = GgmlTypes.ByteSize(info.Type, info.Shape[1]);
            var permute = permuteQk && heads > 0;
            var start = written;
            writer.AddTensor(ggufName, info.Type, dims, stream =>
            {
                for (long r = 0; r < rows; r++)
                {
                    ct.ThrowIfCancellationRequested();
                    var from = permute ? RotateHalfRowOf(r, config.HeadDim) : r;
                    stream.Write(new ReadOnlySpan<byte>(source + from * rowBytes, checked((int)rowBytes)));
                }
                progress?.Report(start + rows * rowBytes);
            });
            written += rows * rowBytes;
        }
        var directory = Path.GetDirectoryName(Path.GetFullPath(destination));
        if (directory is not null) Directory.CreateDirectory(directory);
        writer.WriteTo(destination);
    }

    /// <summary>Marks a merged experts tensor in <see cref="Tensors"/>: the rest is the layer and the part (<c>layer:part</c>).</summary>
    private const string ExpertsPrefix = "\0experts:";

    /// <summary>
    /// Every expert's matrix of one layer and part, one after another, as GGUF's merged 3-D tensor (llama.cpp's
    /// <c>ffn_gate_exps</c> [experts × ff × dim] ...); each expert's shape and type checked against the first's.
    /// </summary>
    private static long WriteMergedExperts(GgufWriter writer, SafetensorsCheckpoint checkpoint, LlamaConfig config, string layerPart, string ggufName,
        long written, IProgress<long>? progress, CancellationToken ct)
    {
        var names = TensorNames.HuggingFaceFor(config);
        var separator = layerPart.IndexOf(':');
        var layer = int.Parse(layerPart[..separator], System.Globalization.CultureInfo.InvariantCulture);
        var part = layerPart[(separator + 1)..];
        var experts = Enumerable.Range(0, config.ExpertCount).Select(e => Find(checkpoint, names.Expert!(layer, e, part))).ToArray();
        var first = experts[0].Info;
        if (first.Shape.Length != 2)
            throw new ModelFormatException(checkpoint.Folder, names.Expert!(layer, 0, part), $"must be 2-dimensional; got [{string.Join(", ", first.Shape)}]");
        for (var e = 1; e < experts.Length; e++)
            if (experts[e].Info.Type != first.Type || !experts[e].Info.Shape.SequenceEqual(first.Shape))
                throw new ModelFormatException(checkpoint.Folder, names.Expert!(layer, e, part),
                    $"{experts[e].Info.Type} [{string.Join(", ", experts[e].Info.Shape)}] differs from expert 0's {first.Type} [{string.Join(", ", first.Shape)}]: GGUF merges them into one tensor");
        long[] dims = [first.Shape[1], first.Shape[0], experts.Length];
        var start = written;
        writer.AddTensor(ggufName, first.Type, dims, stream =>
        {
            foreach (var (file, info) in experts)
            {
                ct.ThrowIfCancellationRequested();
                stream.Write(new ReadOnlySpan<byte>(file.TensorPointer(info), checked((int)info.ByteSize)));
            }
            progress?.Report(start + first.ByteSize * experts.Length);
        });
        return written + first.ByteSize * experts.Length;
    }

    /// <summary>
    /// The rotate-half row that lands on adjacent-pair row <paramref name="row"/> (llama.cpp's
    /// <c>permute</c>: within each head, HF row j·head_dim/2 + i becomes GGUF row 2i + j).
    /// </summary>
    public static long RotateHalfRowOf(long row, int headDim)
    {
        var head = row / headDim;
        var r = row % headDim;
        return head * headDim + r / 2 + r % 2 * (headDim / 2);
    }

    /// <summary>Every tensor the decoder reads, as (Hugging Face name, GGUF name, q/k head count or 0).</summary>
    private static IEnumerable<(string Hf, string Gguf, int Heads)> Tensors(LlamaConfig c)
    {
        var (hf, gguf) = (TensorNames.HuggingFaceFor(c), TensorNames.Gguf);
        yield return (hf.TokenEmbedding, gguf.TokenEmbedding, 0);
        for (var i = 0; i < c.LayerCount; i++)
        {
            // Phi-3's fused matrices go across as they are (llama.cpp's attn_qkv and ffn_up; no permutation: it rotates halves).
            var phi3 = c.Architecture == ModelArchitecture.Phi3;
            var parts = phi3
                ? new List<(string Part, int Heads)> { (TensorNames.AttentionNorm, 0), (TensorNames.QueryKeyValue, 0), (TensorNames.AttentionOutput, 0) }
                : new List<(string Part, int Heads)>
                {
                    (TensorNames.AttentionNorm, 0), (TensorNames.Query, c.HeadCount), (TensorNames.Key, c.KeyValueHeadCount),
                    (TensorNames.Value, 0), (TensorNames.AttentionOutput, 0),
                };
            if (c.HasQkvBias) parts.AddRange([(TensorNames.QueryBias, 0), (TensorNames.KeyBias, 0), (TensorNames.ValueBias, 0)]);
            if (c.HasQkNorm) parts.AddRange([(TensorNames.QueryNorm, 0), (TensorNames.KeyNorm, 0)]);
            if (c.Gemma is not null) parts.AddRange([(TensorNames.PostAttentionNorm, 0), (TensorNames.PostFeedForwardNorm, 0)]);
            if (c.IsMixtureOfExperts)
            {
                parts.AddRange([(TensorNames.FeedForwardNorm, 0), (TensorNames.Router, 0)]);
                foreach (var (part, heads) in parts) yield return (hf.Layer(i, part), gguf.Layer(i, part), heads);
                foreach (var (part, merged) in new[] { (TensorNames.Gate, TensorNames.GateExperts), (TensorNames.Up, TensorNames.UpExperts), (TensorNames.Down, TensorNames.DownExperts) })
                    yield return ($"{ExpertsPrefix}{i}:{part}", gguf.Layer(i, merged), 0);
                continue;
            }
            parts.AddRange(phi3 ? [(TensorNames.FeedForwardNorm, 0), (TensorNames.GateUp, 0), (TensorNames.Down, 0)]
                : [(TensorNames.FeedForwardNorm, 0), (TensorNames.Gate, 0), (TensorNames.Up, 0), (TensorNames.Down, 0)]);
            foreach (var (part, heads) in parts) yield return (hf.Layer(i, part), gguf.Layer(i, part), heads);
        }
        yield return (hf.OutputNorm, gguf.OutputNorm, 0);
        if (!c.TiedOutputHead) yield return (hf.Output, gguf.Output, 0);
    }

    private static (SafetensorsFile File, SafetensorsTensorInfo Info) Find(SafetensorsCheckpoint checkpoint, string name) =>
        checkpoint.TryGetTensor(name, out var file, out var info) ? (file, info)
        : throw new ModelFormatException(checkpoint.Folder, name, "tensor is missing");

    private static TokenizerDefinition ReadTokenizer(string folder)
    {
        var json = Path.Combine(folder, "tokenizer.json");
        var sentencePiece = Path.Combine(folder, "tokenizer.model");
        if (File.Exists(json))
        {
            var definition = TokenizerLoader.ReadTokenizerJson(json);
            return definition with { PreTokenizerName = LlamaCppPreTokenizer(definition, json) };
        }
        if (File.Exists(sentencePiece)) return TokenizerLoader.ReadSentencePieceModel(sentencePiece);
        throw new ModelFormatException(folder, "tokenizer.json", "is missing (and so is tokenizer.model): GGUF carries the tokenizer, so the folder must have one");
    }

    /// <summary>The <c>tokenizer.ggml.pre</c> name whose pre-tokenizer is exactly this one's, so llama.cpp splits text the same way.</summary>
    private static string LlamaCppPreTokenizer(TokenizerDefinition definition, string path)
    {
        string[] candidates = ["gpt-2", "llama-bpe", "qwen2", "smollm", "gpt-4o"];
        foreach (var name in candidates)
            if (PreTokenizerPatterns.ForLlamaCpp(name) is { } known && known.Patterns.SequenceEqual(definition.PreTokenizerPatterns) && known.IgnoreMerges == definition.IgnoreMerges)
                return name;
        throw new ModelFormatException(path, "pre_tokenizer", "matches no pre-tokenizer llama.cpp names (gpt-2, llama-bpe, qwen2, smollm, gpt-4o), so a GGUF could not say how to split text");
    }

    private static string? ChatTemplate(string folder)
    {
        try
        {
            return ChatTemplateSource.FromModel(folder)?.Source;
        }
        catch (Exception e) when (e is FileNotFoundException || (e is ModelFormatException m && m.Field == "tokenizer.chat_template"))
        {
            return null;
        }
    }
}
