using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Formats.Safetensors;
using Bulwark.Engine.Kernels.Reference;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Tokenizers.Loading;

namespace Bulwark.Engine.Synthesis;

/// <summary>
/// Writes synthetic models (seeded random weights, a real GPT-2-derived vocabulary) as one GGUF
/// file or as a Hugging Face folder. Both hold the same logical model: loading either gives the
/// same logits.
/// </summary>
public static class SyntheticModel
{
    /// <summary>ChatML, as Qwen2.5's chat models use it, minus the default system prompt.</summary>
    public const string ChatMlTemplate =
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    /// <summary>
    /// The small model <c>bulwark generate</c> and <c>serve</c> create for <c>bulwark-demo</c>
    /// when no model is given: ~5 M parameters, Q8_0, ChatML. Its weights are random, so its
    /// text is gibberish; it shows the machinery works.
    /// </summary>
    public static SyntheticModelSpec Demo { get; } = new()
    {
        Architecture = "llama",
        Layers = 4,
        Dim = 256,
        Heads = 8,
        KvHeads = 4,
        FeedForward = 768,
        Vocab = 4096,
        Context = 2048,
        DType = GgmlType.Q8_0,
        Seed = 20260101,
        ChatTemplate = ChatMlTemplate,
    };

    /// <summary>
    /// Writes <see cref="Demo"/> to <paramref name="path"/> unless a file is already there; false
    /// when it was. The file is written under a temporary name and renamed, so a reader never sees
    /// half a model and two processes racing both end with one complete file.
    /// </summary>
    public static bool WriteDemoGgufIfMissing(string path)
    {
        if (File.Exists(path)) return false;
        var temporary = $"{path}.{Guid.NewGuid():N}.tmp";
        try
        {
            WriteGguf(Demo, temporary);
            File.Move(temporary, path, overwrite: false);
            return true;
        }
        catch (IOException) when (File.Exists(path))
        {
            return false; // another process finished first; its file has the same bytes
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    public static void WriteGguf(SyntheticModelSpec spec, string path) => WriteGguf(spec, path, null);

    /// <summary>Writes <paramref name="spec"/> as one GGUF v3 file; <paramref name="progress"/> gets parameters generated so far.</summary>
    public static void WriteGguf(SyntheticModelSpec spec, string path, IProgress<long>? progress)
    {
        spec.Validate();
        var arch = spec.Architecture;
        var writer = new GgufWriter()
            .Add("general.architecture", arch)
            .Add("general.name", "bulwark-synthetic")
            .Add("general.file_type", FileType(spec.DType))
            .Add("general.alignment", (uint)GgufFile.DefaultAlignment)
            .Add($"{arch}.context_length", (uint)spec.Context)
            .Add($"{arch}.embedding_length", (uint)spec.Dim)
            .Add($"{arch}.block_count", (uint)spec.Layers)
            .Add($"{arch}.feed_forward_length", (uint)spec.FeedForward)
            .Add($"{arch}.attention.head_count", (uint)spec.Heads)
            .Add($"{arch}.attention.head_count_kv", (uint)spec.KvHeads)
            .Add($"{arch}.attention.layer_norm_rms_epsilon", spec.RmsNormEpsilon)
            .Add($"{arch}.rope.freq_base", spec.RopeTheta)
            .Add($"{arch}.rope.dimension_count", (uint)spec.HeadDim)
            .Add($"{arch}.vocab_size", (uint)spec.Vocab)
            .AddTokenizer(SyntheticVocabulary.Create(spec.Vocab));
        if (spec.ChatTemplate is not null) writer.Add("tokenizer.chat_template", spec.ChatTemplate);
        SyntheticRope.AddToGguf(spec, writer);
        // llama.cpp writes the key only for embedding models, as a uint32.
        if (spec.Pooling != Model.Config.PoolingType.None) writer.Add($"{arch}.pooling_type", (uint)spec.Pooling);
        if (spec.IsMixtureOfExperts)
        {
            // As llama.cpp's converter writes them for Mixtral (llama) and Qwen3-MoE.
            writer.Add($"{arch}.expert_count", (uint)spec.ExpertCount).Add($"{arch}.expert_used_count", (uint)spec.ExpertsUsedCount);
            if (arch == "qwen3moe") writer.Add($"{arch}.expert_feed_forward_length", (uint)spec.FeedForward);
        }
        if (spec.IsGemma)
        {
            // As llama.cpp's converter writes them for Gemma.
            writer.Add($"{arch}.attention.key_length", (uint)spec.HeadDim)
                .Add($"{arch}.attention.value_length", (uint)spec.HeadDim)
                .Add($"{arch}.attention.sliding_window", (uint)spec.Window);
            if (arch == "gemma2")
                writer.Add($"{arch}.attn_logit_softcapping", spec.AttentionSoftCap ?? 50f)
                    .Add($"{arch}.final_logit_softcapping", spec.FinalSoftCap ?? 30f);
        }

        long done = 0;
        foreach (var tensor in SyntheticWeights.Generate(spec))
        {
            // The router stays F32, as llama.cpp's converter keeps ffn_gate_inp (a rounded router flips near-tied experts).
            var type = tensor.IsMatrix && !tensor.Name.EndsWith("." + TensorNames.Router, StringComparison.Ordinal) ? spec.DType : GgmlType.F32;
            // GGUF dimensions are innermost-first.
            var dims = tensor.Shape.Reverse().Select(d => (long)d).ToArray();
            writer.AddTensor(tensor.Name, type, dims, Quantize.Tensor(type, tensor.Values, tensor.RowLength));
            progress?.Report(done += tensor.Values.Length);
        }
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null) Directory.CreateDirectory(directory);
        writer.WriteTo(path);
    }

    public static void WriteSafetensors(SyntheticModelSpec spec, string folder) => WriteSafetensors(spec, folder, null);

    /// <summary>
    /// Writes <paramref name="spec"/> as a Hugging Face folder: config.json, model.safetensors,
    /// tokenizer.json, tokenizer_config.json. Every tensor takes the spec's dtype (F32, F16 or
    /// BF16; quantized types are refused). llama and smollm3 q/k rows are un-permuted to HF's rotate-half order; Gemma's
    /// norms are stored as w where the GGUF holds 1 + w, as transformers keeps them.
    /// </summary>
    public static void WriteSafetensors(SyntheticModelSpec spec, string folder, IProgress<long>? progress)
    {
        spec.Validate();
        if (spec.DType is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16))
            throw new ArgumentException($"safetensors output supports dtype F32, F16 or BF16; got {spec.DType} (write quantized models as GGUF)");
        var writer = new SafetensorsWriter();
        long done = 0;
        foreach (var (name, tensor) in HuggingFaceTensors(spec))
        {
            writer.AddTensor(name, spec.DType, tensor.Shape.Select(d => (long)d).ToArray(), Quantize.Tensor(spec.DType, tensor.Values, tensor.RowLength));
            progress?.Report(done += tensor.Values.Length);
        }
        Directory.CreateDirectory(folder);
        writer.WriteTo(Path.Combine(folder, "model.safetensors"));
        HuggingFaceFiles.Write(spec, SyntheticVocabulary.Create(spec.Vocab), folder);
    }

    /// <summary>
    /// <paramref name="spec"/>'s weights as a Hugging Face checkpoint holds them, by their Hugging Face names: llama and
    /// smollm3 q/k rows in rotate-half order, Gemma's norms as w (the GGUF holds 1 + w).
    /// </summary>
    internal static IEnumerable<(string Name, SyntheticTensor Tensor)> HuggingFaceTensors(SyntheticModelSpec spec)
    {
        foreach (var tensor in SyntheticWeights.Generate(spec))
        {
            var values = tensor.Values;
            if (spec.PermutesQueryKeyRows && (tensor.Name.EndsWith(".attn_q.weight") || tensor.Name.EndsWith(".attn_k.weight")))
            {
                var heads = tensor.Name.EndsWith(".attn_q.weight") ? spec.Heads : spec.KvHeads;
                values = RopeRowOrder.ToRotateHalf(values, heads, spec.HeadDim, tensor.RowLength);
            }
            if (spec.IsGemma && tensor.Name.EndsWith("norm.weight", StringComparison.Ordinal))
                values = values.Select(v => v - 1f).ToArray(); // exact: every v is within [0.5, 2] of 1 (Sterbenz)
            if (tensor.Shape.Length == 3)
            {
                // transformers stores each expert apart (Mixtral's experts.E.w1, Qwen3-MoE's experts.E.gate_proj, ...).
                var names = spec.Architecture == "qwen3moe" ? TensorNames.HuggingFaceQwen3Moe : TensorNames.HuggingFaceMixtral;
                var parts = tensor.Name.Split('.', 3);
                var layer = int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture);
                var part = parts[2] switch { TensorNames.GateExperts => TensorNames.Gate, TensorNames.UpExperts => TensorNames.Up, _ => TensorNames.Down };
                var size = tensor.Shape[1] * tensor.Shape[2];
                for (var e = 0; e < tensor.Shape[0]; e++)
                    yield return (names.Expert!(layer, e, part), tensor with { Shape = [tensor.Shape[1], tensor.Shape[2]], Values = values.AsSpan(e * size, size).ToArray() });
                continue;
            }
            var hfNames = spec.IsGemma ? TensorNames.HuggingFaceGemma
                : spec.IsMixtureOfExperts ? (spec.Architecture == "qwen3moe" ? TensorNames.HuggingFaceQwen3Moe : TensorNames.HuggingFaceMixtral) : null;
            var name = hfNames is not null ? HuggingFaceName(tensor.Name, hfNames) : HuggingFaceName(tensor.Name, spec.Architecture);
            yield return (name, tensor with { Values = values });
        }
    }

    /// <summary>llama.cpp's <c>general.file_type</c> (<c>llama_ftype</c>) for the dtype of the 2-D weights.</summary>
    public static uint FileType(GgmlType type) => GgmlTypes.LlamaFileType(type);

    /// <summary>The Hugging Face name of a GGUF tensor name of an <paramref name="architecture"/> model (phi3's <c>ffn_up</c> is the fused gate_up_proj).</summary>
    public static string HuggingFaceName(string ggufName, string architecture) =>
        architecture == "phi3" && ggufName.EndsWith("." + TensorNames.Up, StringComparison.Ordinal)
            ? HuggingFaceName(ggufName[..^TensorNames.Up.Length] + TensorNames.GateUp)
            : HuggingFaceName(ggufName);

    /// <summary>The Hugging Face name of a GGUF tensor name.</summary>
    public static string HuggingFaceName(string ggufName, TensorNames? names = null)
    {
        var hf = names ?? TensorNames.HuggingFace;
        switch (ggufName)
        {
            case "token_embd.weight": return hf.TokenEmbedding;
            case "output_norm.weight": return hf.OutputNorm;
            case "output.weight": return hf.Output;
        }
        var parts = ggufName.Split('.', 3);
        if (parts.Length != 3 || parts[0] != "blk" || !int.TryParse(parts[1], out var layer))
            throw new ArgumentException($"not a GGUF tensor name this model has: {ggufName}", nameof(ggufName));
        return hf.Layer(layer, parts[2]);
    }
}
