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
    private static readonly IReadOnlyList<string> FileTargets = ["gguf", "safetensors", "index", "config"];

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
