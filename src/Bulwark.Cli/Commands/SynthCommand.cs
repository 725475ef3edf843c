using System.CommandLine;
using Bulwark.Cli.Terminal;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Synthesis;

namespace Bulwark.Cli.Commands;

/// <summary>
/// <c>bulwark models synth</c>: a deterministic synthetic model (seeded random weights, a
/// GPT-2-derived vocabulary) as GGUF or as a Hugging Face folder, for tests and benchmarks.
/// </summary>
internal static class SynthCommand
{
    public static Command Create()
    {
        var defaults = new SyntheticModelSpec();
        var arch = new Option<string>("--arch") { Description = "Architecture: llama, qwen2 (q/k/v biases), qwen3 (q/k norms), smollm3 (no RoPE in every 4th layer), phi3 (fused q/k/v and gate/up), gemma2 (GeGLU, pre/post norms, soft caps, every other layer windowed; always tied), gemma3 (q/k norms, five windowed layers to one global) or qwen3moe (qwen3 with a mixture of experts; see --experts).", DefaultValueFactory = _ => defaults.Architecture };
        arch.AcceptOnlyFromAmong([.. SyntheticModelSpec.Architectures]);
        var layers = new Option<int>("--layers") { Description = "Decoder layers.", DefaultValueFactory = _ => defaults.Layers };
        var dim = new Option<int>("--dim") { Description = "Embedding width.", DefaultValueFactory = _ => defaults.Dim };
        var heads = new Option<int>("--heads") { Description = "Attention (query) heads; dim / heads must be even.", DefaultValueFactory = _ => defaults.Heads };
        var kvHeads = new Option<int>("--kv-heads") { Description = "Key/value heads; must divide --heads (equal: MHA, 1: MQA).", DefaultValueFactory = _ => defaults.KvHeads };
        var ff = new Option<int>("--ff") { Description = "Feed-forward (SwiGLU) width.", DefaultValueFactory = _ => defaults.FeedForward };
        var vocab = new Option<int>("--vocab") { Description = $"Vocabulary size, {SyntheticVocabulary.MinimumSize}..{SyntheticVocabulary.MaximumSize} (GPT-2's first ranks plus 3 chat specials).", DefaultValueFactory = _ => defaults.Vocab };
        var ctx = new Option<int>("--ctx") { Description = "Context length.", DefaultValueFactory = _ => defaults.Context };
        var dtype = new Option<string>("--dtype") { Description = "Type of the 2-D weights: f32, f16, bf16, q8_0, q4_0 (quantized: dim and ff multiples of 32; GGUF only).", DefaultValueFactory = _ => "f32" };
        dtype.AcceptOnlyFromAmong("f32", "f16", "bf16", "q8_0", "q4_0");
        var format = new Option<string>("--format") { Description = "gguf (one file) or safetensors (a Hugging Face folder).", DefaultValueFactory = _ => "gguf" };
        format.AcceptOnlyFromAmong("gguf", "safetensors");
        var seed = new Option<ulong>("--seed") { Description = "Seed of the weights: same arguments, same bytes.", DefaultValueFactory = _ => 0 };
        var tied = new Option<bool>("--tied") { Description = "No separate output head: logits use the token embedding." };
        var chat = new Option<bool>("--chat-template") { Description = "Add a ChatML chat template." };
        var pooling = new Option<string>("--pooling") { Description = "Make an embedding model: none (a generator), mean, cls or last (GGUF pooling_type; 1_Pooling/config.json for safetensors).", DefaultValueFactory = _ => "none" };
        pooling.AcceptOnlyFromAmong("none", "mean", "cls", "last");
        var ropeTheta = new Option<float>("--rope-theta") { Description = "RoPE base frequency (Llama 3 uses 500000).", DefaultValueFactory = _ => defaults.RopeTheta };
        var ropeScaling = new Option<string>("--rope-scaling") { Description = "RoPE scaling: none, linear (gemma3: its global layers only), llama3 (Llama 3.1's; GGUF gets llama.cpp's rope_freqs.weight) or longrope (Phi-3's, --arch phi3; GGUF gets rope_factors_short/long).", DefaultValueFactory = _ => "none" };
        ropeScaling.AcceptOnlyFromAmong("none", "linear", "llama3", "longrope");
        var ropeFactor = new Option<float>("--rope-factor") { Description = "Scaling factor of --rope-scaling linear or llama3; longrope: the largest long factor.", DefaultValueFactory = _ => 8f };
        var ropeOriginalCtx = new Option<int?>("--rope-original-ctx") { Description = "llama3 or longrope scaling's original_max_position_embeddings (default: --ctx / 4, so the scaling changes frequencies the context uses; longrope uses its long factors above it)." };
        var window = new Option<int?>("--sliding-window") { Description = "gemma2/gemma3: the windowed layers' window (default 8, so short prompts cross it)." };
        var attnCap = new Option<float?>("--attn-softcap") { Description = "gemma2: attention score soft cap (default 50)." };
        var finalCap = new Option<float?>("--final-softcap") { Description = "gemma2: output logit soft cap (default 30)." };
        var experts = new Option<int?>("--experts") { Description = "Mixture of experts: llama with experts is Mixtral (GGUF arch llama, Hugging Face MixtralForCausalLM); qwen3moe defaults to 4. Each expert is --ff wide." };
        var expertsUsed = new Option<int?>("--experts-used") { Description = "Experts each token runs (default 2, or 1 with a single expert); at most --experts." };
        var quantize = new Option<string>("--quantize") { Description = "safetensors only: write the decoder layers' linear weights as AWQ (AutoAWQ GEMM) or GPTQ (AutoGPTQ) 4-bit, quantized from the F32 weights by the format's definition; norms, embeddings and lm_head keep --dtype. dim and ff must be multiples of --group-size.", DefaultValueFactory = _ => "none" };
        quantize.AcceptOnlyFromAmong("none", "awq", "gptq");
        var groupSize = new Option<int>("--group-size") { Description = "--quantize: inputs per group, a multiple of 32, or -1 for one group per row.", DefaultValueFactory = _ => 32 };
        var actOrder = new Option<bool>("--act-order") { Description = "--quantize gptq: desc_act, inputs assigned to groups in a seeded random order through g_idx." };
        var asymmetric = new Option<bool>("--asymmetric") { Description = "--quantize gptq: sym false (per-group zero points; AWQ always has them)." };
        var output = new Option<string>("--out") { Description = "Output .gguf file, or folder for safetensors.", Required = true };
        var command = new Command("synth", "Write a deterministic synthetic model (random weights, real BPE vocabulary) for tests and benchmarks.")
        {
            arch, layers, dim, heads, kvHeads, ff, vocab, ctx, dtype, format, seed, tied, chat, pooling, ropeTheta, ropeScaling, ropeFactor, ropeOriginalCtx,
            window, attnCap, finalCap, experts, expertsUsed, quantize, groupSize, actOrder, asymmetric, output,
        };
        command.SetAction(r =>
        {
            var stderr = r.InvocationConfiguration.Error;
            var spec = new SyntheticModelSpec
            {
                Architecture = r.GetValue(arch)!,
                Layers = r.GetValue(layers),
                Dim = r.GetValue(dim),
                Heads = r.GetValue(heads),
                KvHeads = r.GetValue(kvHeads),
                FeedForward = r.GetValue(ff),
                Vocab = r.GetValue(vocab),
                Context = r.GetValue(ctx),
                DType = ParseDType(r.GetValue(dtype)!),
                Seed = r.GetValue(seed),
                TiedOutput = r.GetValue(tied),
                ChatTemplate = r.GetValue(chat) ? SyntheticModel.ChatMlTemplate : null,
                Pooling = PoolingTypeNames.TryParse(r.GetValue(pooling), out var p) ? p : PoolingType.None,
                RopeTheta = r.GetValue(ropeTheta),
                RopeScaling = r.GetValue(ropeScaling) switch
                {
                    "linear" => new RopeScaling(RopeScalingKind.Linear, r.GetValue(ropeFactor)),
                    "llama3" => new RopeScaling(RopeScalingKind.Llama3, r.GetValue(ropeFactor),
                        OriginalContextLength: r.GetValue(ropeOriginalCtx) ?? Math.Max(1, r.GetValue(ctx) / 4)),
                    "longrope" => SyntheticRope.LongRope(r.GetValue(heads) > 0 ? r.GetValue(dim) / r.GetValue(heads) : 2,
                        r.GetValue(ropeOriginalCtx) ?? Math.Max(1, r.GetValue(ctx) / 4), r.GetValue(ropeFactor)),
                    _ => RopeScaling.None,
                },
                SlidingWindow = r.GetValue(window),
                AttentionSoftCap = r.GetValue(attnCap),
                FinalSoftCap = r.GetValue(finalCap),
                Experts = r.GetValue(experts),
                ExpertsUsed = r.GetValue(expertsUsed),
            };
            var path = r.GetValue(output)!;
            var asGguf = r.GetValue(format) == "gguf";
            try
            {
                spec.Validate();
                if (!asGguf && spec.DType is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16))
                    throw new ArgumentException($"--format safetensors needs --dtype f32, f16 or bf16; got {r.GetValue(dtype)} (quantized weights belong in GGUF)");
                var parameters = SyntheticWeights.ParameterCount(spec);
                // Big models take a while; the bar counts float32 bytes generated.
                var bar = parameters >= BarThreshold ? new ProgressBar("generating", parameters * 4) : null;
                var progress = bar is null ? null : new FloatBytes(bar);
                var int4 = Int4Options(r.GetValue(quantize)!, r.GetValue(groupSize), r.GetValue(actOrder), r.GetValue(asymmetric), asGguf);
                if (asGguf) SyntheticModel.WriteGguf(spec, path, progress);
                else if (int4 is not null) SyntheticInt4.Write(spec, path, int4);
                else SyntheticModel.WriteSafetensors(spec, path, progress);
                bar?.Finish();
                r.InvocationConfiguration.Output.WriteLine(
                    $"wrote {path}: {spec.Architecture}, {parameters:N0} parameters, {spec.DType}, {spec.Layers} layers, dim {spec.Dim}, heads {spec.Heads}/{spec.KvHeads}, ff {spec.FeedForward}, vocab {spec.Vocab}, ctx {spec.Context}, seed {spec.Seed}" +
                    (spec.Pooling == PoolingType.None ? "" : $", {PoolingTypeNames.Name(spec.Pooling)} pooling") +
                    (spec.RopeScaling.Kind == RopeScalingKind.None ? "" : $", {spec.RopeScaling.Kind.ToString().ToLowerInvariant()} rope scaling") +
                    (spec.IsMixtureOfExperts ? $", {spec.ExpertsUsedCount} of {spec.ExpertCount} experts" : "") +
                    (int4 is null ? "" : $", linear layers {int4.Format}"));
                return 0;
            }
            catch (ArgumentException e)
            {
                stderr.WriteLine("error: " + e.Message);
                return 2;
            }
        });
        return command;
    }

    /// <summary>The AWQ/GPTQ options of <c>--quantize</c>, null for none; options that do not apply are refused.</summary>
    private static Int4WriteOptions? Int4Options(string quantize, int groupSize, bool actOrder, bool asymmetric, bool asGguf)
    {
        if (quantize == "none")
        {
            if (actOrder || asymmetric) throw new ArgumentException("--act-order and --asymmetric need --quantize gptq");
            return null;
        }
        if (asGguf) throw new ArgumentException($"--quantize {quantize} writes a Hugging Face folder: add --format safetensors");
        var method = quantize == "awq" ? Int4Method.Awq : Int4Method.Gptq;
        if (method == Int4Method.Awq && (actOrder || asymmetric))
            throw new ArgumentException("--act-order and --asymmetric are GPTQ options (AWQ always has zero points and no act order)");
        if (groupSize != -1 && (groupSize <= 0 || groupSize % 32 != 0))
            throw new ArgumentException($"--group-size must be -1 or a positive multiple of 32; got {groupSize}");
        return new Int4WriteOptions
        {
            Method = method,
            GroupSize = groupSize == -1 ? 0 : groupSize,
            ActOrder = actOrder,
            Symmetric = method == Int4Method.Gptq ? !asymmetric : null,
        };
    }

    private const long BarThreshold = 1 << 24;

    private sealed class FloatBytes(ProgressBar bar) : IProgress<long>
    {
        public void Report(long parameters) => bar.Report(parameters * 4);
    }

    public static GgmlType ParseDType(string text) => text.ToLowerInvariant() switch
    {
        "f32" => GgmlType.F32,
        "f16" => GgmlType.F16,
        "bf16" => GgmlType.BF16,
        "q8_0" => GgmlType.Q8_0,
        "q4_0" => GgmlType.Q4_0,
        _ => throw new ArgumentException($"--dtype must be f32, f16, bf16, q8_0 or q4_0; got {text}"),
    };
}
