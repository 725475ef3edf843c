using System.Text.Json;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Tokenizers;

namespace Bulwark.Engine.Synthesis;

/// <summary>
/// The JSON files of a Hugging Face model folder for a synthetic model: config.json,
/// tokenizer.json (byte-level BPE, GPT-2 pre-tokenizer) and tokenizer_config.json, in the forms
/// transformers writes them.
/// </summary>
internal static class HuggingFaceFiles
{
    private static readonly JsonWriterOptions Indented = new() { Indented = true };

    public static void Write(SyntheticModelSpec spec, TokenizerDefinition vocabulary, string folder, Int4WriteOptions? int4 = null)
    {
        File.WriteAllBytes(Path.Combine(folder, "config.json"), Json(w => Config(w, spec, vocabulary, int4)));
        File.WriteAllBytes(Path.Combine(folder, "tokenizer.json"), Json(w => Tokenizer(w, vocabulary)));
        File.WriteAllBytes(Path.Combine(folder, "tokenizer_config.json"), Json(w => TokenizerConfig(w, spec, vocabulary)));
        if (spec.Pooling != Model.Config.PoolingType.None)
        {
            Directory.CreateDirectory(Path.Combine(folder, "1_Pooling"));
            File.WriteAllBytes(Path.Combine(folder, Model.Config.SentenceTransformersPooling.RelativePath), Json(w => Pooling(w, spec)));
        }
    }

    /// <summary>sentence-transformers' pooling module config, as it writes one.</summary>
    private static void Pooling(Utf8JsonWriter w, SyntheticModelSpec spec)
    {
        w.WriteStartObject();
        w.WriteNumber("word_embedding_dimension", spec.Dim);
        w.WriteBoolean("pooling_mode_cls_token", spec.Pooling == Model.Config.PoolingType.Cls);
        w.WriteBoolean("pooling_mode_mean_tokens", spec.Pooling == Model.Config.PoolingType.Mean);
        w.WriteBoolean("pooling_mode_max_tokens", false);
        w.WriteBoolean("pooling_mode_mean_sqrt_len_tokens", false);
        w.WriteBoolean("pooling_mode_weightedmean_tokens", false);
        w.WriteBoolean("pooling_mode_lasttoken", spec.Pooling == Model.Config.PoolingType.Last);
        w.WriteBoolean("include_prompt", true);
        w.WriteEndObject();
    }

    private static byte[] Json(Action<Utf8JsonWriter> write)
    {
        var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, Indented)) write(writer);
        buffer.WriteByte((byte)'\n');
        return buffer.ToArray();
    }

    private static void Config(Utf8JsonWriter w, SyntheticModelSpec spec, TokenizerDefinition vocabulary, Int4WriteOptions? int4)
    {
        w.WriteStartObject();
        w.WriteStartArray("architectures");
        w.WriteStringValue(spec.Architecture switch
        {
            "qwen2" => "Qwen2ForCausalLM", "qwen3" => "Qwen3ForCausalLM", "smollm3" => "SmolLM3ForCausalLM", "phi3" => "Phi3ForCausalLM",
            "gemma2" => "Gemma2ForCausalLM", "gemma3" => "Gemma3ForCausalLM", "qwen3moe" => "Qwen3MoeForCausalLM",
            _ => spec.IsMixtureOfExperts ? "MixtralForCausalLM" : "LlamaForCausalLM",
        });
        w.WriteEndArray();
        w.WriteString("model_type", spec.Architecture switch
        {
            "gemma3" => "gemma3_text", "qwen3moe" => "qwen3_moe", "llama" when spec.IsMixtureOfExperts => "mixtral", var a => a,
        });
        if (spec.Architecture == "qwen3moe")
        {
            // As Qwen3-30B-A3B's config: every layer sparse, the chosen experts' weights renormalised.
            w.WriteNumber("num_experts", spec.ExpertCount);
            w.WriteNumber("num_experts_per_tok", spec.ExpertsUsedCount);
            w.WriteNumber("moe_intermediate_size", spec.FeedForward);
            w.WriteBoolean("norm_topk_prob", true);
            w.WriteNumber("decoder_sparse_step", 1);
            w.WriteStartArray("mlp_only_layers");
            w.WriteEndArray();
        }
        else if (spec.IsMixtureOfExperts)
        {
            w.WriteNumber("num_local_experts", spec.ExpertCount);
            w.WriteNumber("num_experts_per_tok", spec.ExpertsUsedCount);
        }
        w.WriteNumber("hidden_size", spec.Dim);
        w.WriteNumber("intermediate_size", spec.FeedForward);
        w.WriteNumber("num_hidden_layers", spec.Layers);
        w.WriteNumber("num_attention_heads", spec.Heads);
        w.WriteNumber("num_key_value_heads", spec.KvHeads);
        w.WriteNumber("head_dim", spec.HeadDim);
        w.WriteNumber("vocab_size", spec.Vocab);
        w.WriteNumber("max_position_embeddings", spec.Context);
        w.WriteNumber("rms_norm_eps", spec.RmsNormEpsilon);
        w.WriteNumber("rope_theta", spec.RopeTheta);
        SyntheticRope.WriteHuggingFaceScaling(w, spec);
        w.WriteBoolean("tie_word_embeddings", !spec.HasOutputHead);
        if (spec.IsGemma) Gemma(w, spec);
        else w.WriteString("hidden_act", "silu");
        if (spec.Architecture is "llama" or "smollm3" && !spec.IsMixtureOfExperts)
        {
            w.WriteBoolean("attention_bias", false);
            w.WriteBoolean("mlp_bias", false);
        }
        if (spec.Architecture == "smollm3")
        {
            // As SmolLM3-3B's config: the interval and the list transformers derives from it.
            w.WriteNumber("no_rope_layer_interval", 4);
            w.WriteStartArray("no_rope_layers");
            for (var l = 0; l < spec.Layers; l++) w.WriteNumberValue((l + 1) % 4 != 0 ? 1 : 0);
            w.WriteEndArray();
            w.WriteBoolean("use_sliding_window", false);
        }
        w.WriteNumber("bos_token_id", vocabulary.Special.Bos);
        w.WriteNumber("eos_token_id", vocabulary.Special.Eos);
        w.WriteString("torch_dtype", spec.DType switch { GgmlType.F16 => "float16", GgmlType.BF16 => "bfloat16", _ => "float32" });
        if (int4 is not null) Quantization(w, int4);
        w.WriteEndObject();
    }

    /// <summary>quantization_config as transformers saves AutoAWQ's (AwqConfig) and AutoGPTQ/optimum's (GPTQConfig).</summary>
    private static void Quantization(Utf8JsonWriter w, Int4WriteOptions int4)
    {
        var format = int4.Format;
        w.WriteStartObject("quantization_config");
        w.WriteString("quant_method", format.Method == Model.Config.Int4Method.Awq ? "awq" : "gptq");
        w.WriteNumber("bits", Model.Config.Int4Checkpoint.Bits);
        w.WriteNumber("group_size", format.GroupSize == 0 ? -1 : format.GroupSize);
        if (format.Method == Model.Config.Int4Method.Awq)
        {
            w.WriteBoolean("zero_point", true);
            w.WriteString("version", "gemm");
            w.WriteNull("modules_to_not_convert");
        }
        else
        {
            w.WriteBoolean("desc_act", format.DescAct);
            w.WriteBoolean("sym", format.Symmetric);
            w.WriteNumber("damp_percent", 0.01);
            w.WriteBoolean("true_sequential", true);
            w.WriteString("checkpoint_format", format.ZeroOffset == 1 ? "gptq" : "gptq_v2");
        }
        w.WriteEndObject();
    }

    /// <summary>Gemma 2 / Gemma 3 text config keys, as transformers writes them (the window's layers as layer_types).</summary>
    private static void Gemma(Utf8JsonWriter w, SyntheticModelSpec spec)
    {
        w.WriteString("hidden_activation", "gelu_pytorch_tanh");
        w.WriteNumber("query_pre_attn_scalar", spec.HeadDim); // what llama.cpp assumes for every shape but 27B
        w.WriteNumber("sliding_window", spec.Window);
        var pattern = spec.Architecture == "gemma2" ? 2 : 6;
        w.WriteStartArray("layer_types");
        for (var l = 0; l < spec.Layers; l++) w.WriteStringValue(l % pattern < pattern - 1 ? "sliding_attention" : "full_attention");
        w.WriteEndArray();
        if (spec.Architecture == "gemma2")
        {
            w.WriteNumber("attn_logit_softcapping", spec.AttentionSoftCap ?? 50f);
            w.WriteNumber("final_logit_softcapping", spec.FinalSoftCap ?? 30f);
        }
        else
        {
            w.WriteNull("attn_logit_softcapping");
            w.WriteNull("final_logit_softcapping");
            w.WriteNumber("rope_local_base_freq", 10000);
        }
    }

    private static void Tokenizer(Utf8JsonWriter w, TokenizerDefinition vocabulary)
    {
        w.WriteStartObject();
        w.WriteString("version", "1.0");
        w.WriteNull("truncation");
        w.WriteNull("padding");
        w.WriteStartArray("added_tokens");
        for (var id = 0; id < vocabulary.Tokens.Count; id++)
        {
            if (vocabulary.Types[id] != TokenType.Control) continue;
            w.WriteStartObject();
            w.WriteNumber("id", id);
            w.WriteString("content", vocabulary.Tokens[id]);
            w.WriteBoolean("single_word", false);
            w.WriteBoolean("lstrip", false);
            w.WriteBoolean("rstrip", false);
            w.WriteBoolean("normalized", false);
            w.WriteBoolean("special", true);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteNull("normalizer");
        foreach (var part in new[] { "pre_tokenizer", "post_processor", "decoder" })
        {
            w.WriteStartObject(part);
            w.WriteString("type", "ByteLevel");
            w.WriteBoolean("add_prefix_space", false);
            w.WriteBoolean("trim_offsets", part != "pre_tokenizer");
            w.WriteBoolean("use_regex", true);
            w.WriteEndObject();
        }
        w.WriteStartObject("model");
        w.WriteString("type", "BPE");
        w.WriteNull("dropout");
        w.WriteNull("unk_token");
        w.WriteString("continuing_subword_prefix", "");
        w.WriteString("end_of_word_suffix", "");
        w.WriteBoolean("fuse_unk", false);
        w.WriteBoolean("byte_fallback", false);
        w.WriteBoolean("ignore_merges", vocabulary.IgnoreMerges);
        w.WriteStartObject("vocab");
        for (var id = 0; id < vocabulary.Tokens.Count; id++)
            if (vocabulary.Types[id] != TokenType.Control) w.WriteNumber(vocabulary.Tokens[id], id);
        w.WriteEndObject();
        w.WriteStartArray("merges");
        foreach (var (left, right) in vocabulary.Merges!)
        {
            w.WriteStartArray();
            w.WriteStringValue(left);
            w.WriteStringValue(right);
            w.WriteEndArray();
        }
        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static void TokenizerConfig(Utf8JsonWriter w, SyntheticModelSpec spec, TokenizerDefinition vocabulary)
    {
        var s = vocabulary.Special;
        w.WriteStartObject();
        w.WriteString("tokenizer_class", "PreTrainedTokenizerFast");
        w.WriteString("bos_token", vocabulary.Tokens[s.Bos]);
        w.WriteString("eos_token", vocabulary.Tokens[s.Eos]);
        w.WriteString("pad_token", vocabulary.Tokens[s.Padding]);
        w.WriteBoolean("add_bos_token", s.AddBos);
        w.WriteBoolean("add_eos_token", s.AddEos);
        w.WriteNumber("model_max_length", spec.Context);
        if (spec.ChatTemplate is not null) w.WriteString("chat_template", spec.ChatTemplate);
        w.WriteEndObject();
    }
}
