using System.Text.Json;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Kernels.Reference;

namespace Bulwark.Engine.Model.Config;

/// <summary>
/// Reads a Hugging Face <c>config.json</c> of a Llama-family causal LM (llama, mistral, qwen2,
/// qwen3, ..., and the mixtures of experts mixtral and qwen3_moe) into a <see cref="LlamaConfig"/>, with transformers' defaults for absent keys. Anything
/// the decoder does not implement (other activations, o_proj/MLP biases, partial RoPE, YaRN,
/// quantized checkpoints other than 4-bit AWQ/GPTQ) is refused by name rather than silently computed wrong.
/// </summary>
public static class HfConfig
{
    public const string FileName = "config.json";

    /// <summary>Real configs are a few kilobytes; this keeps a hostile one from filling memory.</summary>
    public const long MaxBytes = 4 * 1024 * 1024;

    private static readonly (string ModelType, string ClassName, ModelArchitecture Architecture)[] Supported =
    [
        ("llama", "LlamaForCausalLM", ModelArchitecture.Llama),
        ("mistral", "MistralForCausalLM", ModelArchitecture.Mistral),
        ("qwen2", "Qwen2ForCausalLM", ModelArchitecture.Qwen2),
        ("qwen3", "Qwen3ForCausalLM", ModelArchitecture.Qwen3),
        ("smollm3", "SmolLM3ForCausalLM", ModelArchitecture.SmolLM3),
        ("phi3", "Phi3ForCausalLM", ModelArchitecture.Phi3),
        ("gemma2", "Gemma2ForCausalLM", ModelArchitecture.Gemma2),
        ("gemma3_text", "Gemma3ForCausalLM", ModelArchitecture.Gemma3),
        ("mixtral", "MixtralForCausalLM", ModelArchitecture.Mixtral),
        ("qwen3_moe", "Qwen3MoeForCausalLM", ModelArchitecture.Qwen3Moe),
    ];

    public static string SupportedList => string.Join(", ", Supported.Select(s => $"{s.ModelType} ({s.ClassName})"));

    public static LlamaConfig Read(string path)
    {
        var full = Path.GetFullPath(path);
        var size = new FileInfo(full).Length;
        if (size > MaxBytes) throw new ModelFormatException(full, "size", $"{size} bytes exceeds the limit of {MaxBytes}");
        return Parse(File.ReadAllBytes(full), full);
    }

    public static LlamaConfig Parse(ReadOnlyMemory<byte> json, string source)
    {
        using var document = ParseObject(json, source, maxDepth: 32);
        return Convert(new HfConfigFields(document.RootElement, source));
    }

    /// <summary>A Hugging Face JSON file that must be one object: invalid UTF-8, invalid JSON or another root is refused naming the file.</summary>
    internal static JsonDocument ParseObject(ReadOnlyMemory<byte> json, string source, int maxDepth)
    {
        // JsonDocument only notices invalid UTF-8 when a string is read; refuse it up front.
        if (!System.Text.Unicode.Utf8.IsValid(json.Span))
            throw new ModelFormatException(source, "content", "is not valid UTF-8");
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = maxDepth });
        }
        catch (JsonException e)
        {
            throw new ModelFormatException(source, "content", $"is not valid JSON: {e.Message}", e);
        }
        if (document.RootElement.ValueKind == JsonValueKind.Object)
            return document;
        var kind = document.RootElement.ValueKind;
        document.Dispose();
        throw new ModelFormatException(source, "content", $"must be a JSON object; got {kind}");
    }

    private static LlamaConfig Convert(HfConfigFields f)
    {
        var (modelType, _, architecture) = Identify(f);
        RefuseUnsupportedFeatures(f, modelType);

        var hidden = f.Int("hidden_size", 1, LlamaConfig.MaxDimension);
        var heads = f.Int("num_attention_heads", 1, 4096);
        var contextLength = f.Int("max_position_embeddings", 1, 1 << 24);
        // Mistral's window applies to every layer and Qwen's (use_sliding_window) to layers from max_window_layers
        // on, as transformers and vLLM run them: both as sliding-window attention. Phi-3's (which llama.cpp, the
        // oracle, ignores) equals full attention on sequences no longer than the window, so its context is capped there.
        var (slidingWindow, firstWindowedLayer) = (0, 0);
        var layerCount = f.Int("num_hidden_layers", 1, 4096);
        if (architecture is ModelArchitecture.Mistral or ModelArchitecture.Mixtral && f.Has("sliding_window"))
            slidingWindow = f.Int("sliding_window", 1, 1 << 24);
        else if (architecture is ModelArchitecture.Qwen2 or ModelArchitecture.Qwen3 && f.Bool("use_sliding_window", false) && f.Has("sliding_window"))
        {
            // transformers' default max_window_layers is 28; a value at or past the layer count windows no layer.
            firstWindowedLayer = f.Int("max_window_layers", 0, 1 << 24, 28);
            if (firstWindowedLayer < layerCount) slidingWindow = f.Int("sliding_window", 1, 1 << 24);
            else firstWindowedLayer = 0;
        }
        else if ((architecture == ModelArchitecture.Phi3 || f.Bool("use_sliding_window", false)) && f.Has("sliding_window"))
            contextLength = Math.Min(contextLength, f.Int("sliding_window", 1, int.MaxValue));
        var kvHeads = f.Int("num_key_value_heads", 1, heads, heads);
        if (heads % kvHeads != 0)
            throw f.Error("num_key_value_heads", $"must divide num_attention_heads {heads}; got {kvHeads}");
        var headDim = f.Int("head_dim", 2, 4096, hidden / heads);
        if (headDim % 2 != 0) throw f.Error("head_dim", $"must be even for RoPE; got {headDim}");
        var (theta, scaling) = HfConfigRope.Read(f, headDim);

        var config = new LlamaConfig
        {
            Architecture = architecture,
            EmbeddingLength = hidden,
            LayerCount = layerCount,
            HeadCount = heads,
            KeyValueHeadCount = kvHeads,
            HeadDim = headDim,
            FeedForwardLength = f.Int("intermediate_size", 1, LlamaConfig.MaxDimension * 4L),
            VocabularySize = f.Int("vocab_size", 1, 1 << 24),
            ContextLength = contextLength,
            RmsNormEpsilon = (float)f.Number("rms_norm_eps", 1e-6),
            RopeTheta = (float)theta,
            RopeScaling = scaling,
            // Hugging Face checkpoints of every architecture rotate halves; only llama.cpp's GGUF
            // converter permutes llama's q/k rows into adjacent pairs.
            RopeLayout = RopeLayout.RotateHalf,
            TiedOutputHead = f.Bool("tie_word_embeddings", false),
            HasQkvBias = architecture == ModelArchitecture.Qwen2,
            HasQkNorm = architecture is ModelArchitecture.Qwen3 or ModelArchitecture.Qwen3Moe,
            NoRopeLayerStep = architecture == ModelArchitecture.SmolLM3 ? HfConfigNoRope.Step(f) : 0,
            SlidingWindow = slidingWindow,
            FirstWindowedLayer = firstWindowedLayer,
            Int4 = f.Object(HfConfigInt4.Key) is { } quantization ? HfConfigInt4.Read(quantization) : null,
        };
        if (architecture is ModelArchitecture.Gemma2 or ModelArchitecture.Gemma3)
            config = HfGemma.Read(f, config);
        if (architecture is ModelArchitecture.Mixtral or ModelArchitecture.Qwen3Moe)
            config = HfMixtureOfExperts.Read(f, config);
        config.Validate(f.File);
        return config;
    }

    private static (string, string, ModelArchitecture) Identify(HfConfigFields f)
    {
        var modelType = f.String("model_type") ?? throw f.Error("model_type", $"is missing (supported: {SupportedList})");
        var match = Supported.FirstOrDefault(s => s.ModelType == modelType);
        if (match.ClassName is null)
            throw f.Error("model_type", $"\"{HfConfigFields.Cut(modelType)}\" is not supported (supported: {SupportedList})");
        if (f.TryGet("architectures", out var list))
        {
            if (list.ValueKind != JsonValueKind.Array || list.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.String))
                throw f.Error("architectures", $"must be an array of class names; got {HfConfigFields.Show(list)}");
            var classes = list.EnumerateArray().Select(e => e.GetString()!).ToList();
            // Other heads on the same body (…ForSequenceClassification, …ForTokenClassification) have no lm_head.
            if (!classes.Contains(match.ClassName, StringComparer.Ordinal))
                throw f.Error("architectures", $"[{HfConfigFields.Cut(string.Join(", ", classes))}] does not include {match.ClassName}, the causal LM this model_type needs (supported: {SupportedList})");
        }
        return match;
    }

    private static void RefuseUnsupportedFeatures(HfConfigFields f, string modelType)
    {
        if (modelType.StartsWith("gemma", StringComparison.Ordinal))
        {
            // Gemma's configs name it hidden_activation (transformers prefers it) and often hidden_act too.
            foreach (var key in new[] { "hidden_activation", "hidden_act" })
                if (f.String(key) is { } gelu && gelu != "gelu_pytorch_tanh")
                    throw f.Error(key, $"\"{HfConfigFields.Cut(gelu)}\" is not supported (Gemma's MLP is GeGLU: gelu_pytorch_tanh)");
        }
        else if ((f.String("hidden_act") ?? "silu") is var activation && activation != "silu")
            throw f.Error("hidden_act", $"\"{HfConfigFields.Cut(activation)}\" is not supported (the decoder's MLP is SwiGLU: silu)");
        // qwen2 always has q/k/v biases (and no o_proj bias); elsewhere attention_bias adds an o_proj bias too.
        if (modelType != "qwen2" && f.Bool("attention_bias", false))
            throw f.Error("attention_bias", $"true is not supported for {modelType} (it adds an o_proj bias the decoder does not have)");
        if (f.Bool("mlp_bias", false))
            throw f.Error("mlp_bias", "true is not supported (the decoder's MLP has no biases)");
    }

}
