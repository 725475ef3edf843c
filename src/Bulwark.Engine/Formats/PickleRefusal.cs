using System.Text;

namespace Bulwark.Engine.Formats;

/// <summary>
/// Recognises PyTorch/pickle checkpoints and refuses them. Unpickling calls any Python function
/// the file names (<c>os.system</c> included), so merely opening such a file runs code chosen by
/// whoever wrote it; Bulwark never opens one, and says how to convert it instead.
/// </summary>
public static class PickleRefusal
{
    /// <summary>Extensions of pickle-based checkpoints (PyTorch, pickle, Lightning/TF-style .ckpt).</summary>
    public static readonly IReadOnlyList<string> Extensions = [".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"];

    public const string HowToConvert =
        "Convert it to safetensors in an isolated environment you trust, e.g. " +
        "`python -c \"from transformers import AutoModelForCausalLM as M; M.from_pretrained('IN').save_pretrained('OUT', safe_serialization=True)\"` " +
        "(or the `safetensors` project's convert.py), download the repository's safetensors files instead " +
        "(`huggingface-cli download REPO --include '*.safetensors' '*.json'`), or convert to GGUF with llama.cpp's convert_hf_to_gguf.py.";

    public static bool HasPickleExtension(string path) =>
        Extensions.Contains(Path.GetExtension(path).ToLowerInvariant());

    /// <summary>
    /// True when the first bytes are a pickle stream (protocol 2 to 5 opens with 0x80 and the
    /// protocol number; legacy torch.save files too) or a torch.save zip, whose first entry is
    /// <c>&lt;name&gt;/data.pkl</c>.
    /// </summary>
    public static bool HasPickleContent(ReadOnlySpan<byte> head)
    {
        if (head.Length >= 2 && head[0] == 0x80 && head[1] is >= 2 and <= 5) return true;
        // Zip local file header: "PK\3\4", name length at 26 (u16 LE), name at 30.
        if (head.Length < 30 || !head.StartsWith("PK\x03\x04"u8)) return false;
        var nameLength = head[26] | head[27] << 8;
        if (head.Length < 30 + nameLength) return false;
        return Encoding.ASCII.GetString(head.Slice(30, nameLength)).EndsWith("data.pkl", StringComparison.Ordinal);
    }

    public static bool IsPickle(string path)
    {
        if (HasPickleExtension(path)) return true;
        Span<byte> head = stackalloc byte[512];
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        return HasPickleContent(head[..stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false)]);
    }

    /// <summary>The refusal for one pickle file or a folder whose only weights are pickles.</summary>
    public static ModelFormatException Refuse(string path, IReadOnlyList<string>? files = null)
    {
        var what = files is { Count: > 0 }
            ? $"the only weights here are pickle files ({string.Join(", ", files.Take(5).Select(Path.GetFileName))})"
            : "this is a pickle-based checkpoint";
        return new ModelFormatException(path, "format",
            $"{what}: loading a pickle runs code chosen by whoever wrote the file, so Bulwark never opens one. {HowToConvert}");
    }
}
