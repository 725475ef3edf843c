using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Formats.Safetensors;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Model.Loading;

namespace Bulwark.Fuzz;

/// <summary>
/// One fuzz target per reader: the model-file readers here, a client's request in
/// <see cref="RequestTargets"/>. Each takes arbitrary bytes; a clean refusal
/// (<see cref="ModelFormatException"/> for files, a 4xx <c>ApiException</c> for requests) is the
/// expected answer to bad input, so <see cref="Run"/> swallows it; any other exception escapes and
/// the fuzzer records the input as a crash.
/// </summary>
internal static class FuzzTargets
{
    private static readonly IReadOnlyList<string> FileTargets = ["gguf", "safetensors", "index", "config", "awq", "gptq"];

    /// <summary>
    /// The config.json beside the fuzzed model.safetensors of the awq/gptq targets: a 64-wide one-layer llama whose linear
    /// layers are packed (seed the fuzzer with <c>bulwark models synth --layers 1 --dim 64 --heads 4 --kv-heads 2 --ff 64
    /// --vocab 300 --format safetensors --quantize awq|gptq</c>'s model.safetensors).
    /// </summary>
    private static string Int4Config(string method) =>
        "{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":1,\"num_attention_heads\":4,\"num_key_value_heads\":2," +
        "\"intermediate_size\":64,\"vocab_size\":300,\"max_position_embeddings\":32,\"quantization_config\":{\"quant_method\":\"" + method +
        "\",\"bits\":4,\"group_size\":32" + (method == "gptq" ? ",\"desc_act\":true" : "") + "}}";

    public static readonly IReadOnlyList<string> Names = [.. FileTargets, .. RequestTargets.Names];

    /// <summary>The fuzz target: <see cref="Read"/>, with clean refusals counted as success.</summary>
    public static void Run(string target, byte[] bytes)
    {
        try
        {
            Read(target, bytes);
        }
        catch (Exception e) when (IsRefusal(e))
        {
            // A clean refusal: the behaviour wanted for hostile input.
        }
    }

    /// <summary>Whether <paramref name="e"/> is the answer wanted for bad input, for files and for requests alike.</summary>
    public static bool IsRefusal(Exception e) => e is ModelFormatException || RequestTargets.IsRefusal(e);

    /// <summary>Reads <paramref name="bytes"/> as Bulwark would read a file of that kind or a request to that route; throws a refusal to refuse.</summary>
    public static void Read(string target, byte[] bytes)
    {
        if (RequestTargets.Names.Contains(target))
        {
            RequestTargets.Read(target, bytes);
            return;
        }
        switch (target)
        {
            case "gguf":
                // The header, then (when it is sound) the model loader over it.
                using (GgufFile.Open(Scratch(bytes))) { }
                GgufModelLoader.Load(Scratch(bytes)).Dispose();
                break;
            case "safetensors":
                using (var file = SafetensorsFile.Open(Scratch(bytes)))
                {
                    // Touch the last byte of every tensor: an offset that escaped the file would fault here.
                    var sum = 0;
                    foreach (var t in file.Tensors)
                        if (t.ByteSize is > 0 and <= int.MaxValue) sum += file.TensorBytes(t)[^1];
                    GC.KeepAlive(sum);
                }
                break;
            case "index":
                SafetensorsIndex.Read(Scratch(bytes));
                break;
            case "config":
                HfConfig.Parse(bytes, HfConfig.FileName);
                break;
            case "awq" or "gptq":
                // The bytes as the model.safetensors of an AWQ/GPTQ folder: header, then the repack of every packed layer.
                var folder = Path.Combine(Path.GetTempPath(), $"bulwark-fuzz-{Environment.ProcessId}-{target}");
                Directory.CreateDirectory(folder);
                File.WriteAllText(Path.Combine(folder, HfConfig.FileName), Int4Config(target));
                File.WriteAllBytes(Path.Combine(folder, "model.safetensors"), bytes);
                SafetensorsModelLoader.Load(folder).Dispose();
                break;
            default:
                throw new ArgumentException($"unknown target {target} (targets: {string.Join(", ", Names)})", nameof(target));
        }
    }

    /// <summary>The readers map files, so each input is written to one scratch file per process.</summary>
    private static string Scratch(byte[] bytes)
    {
        var path = Path.Combine(Path.GetTempPath(), $"bulwark-fuzz-{Environment.ProcessId}.bin");
        File.WriteAllBytes(path, bytes);
        return path;
    }
}
