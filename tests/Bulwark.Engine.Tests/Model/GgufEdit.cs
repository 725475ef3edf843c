using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Model.Loading;
using Bulwark.Engine.Synthesis;

namespace Bulwark.Engine.Tests.Model;

/// <summary>A valid generated GGUF rewritten with some metadata or tensors changed, for the loader's refusals of bad new metadata.</summary>
internal static class GgufEdit
{
    /// <summary>A tensor to write in place of (or beside) the file's ones; null in <see cref="Rewrite"/>'s map removes it.</summary>
    public sealed record Tensor(GgmlType Type, long[] Dimensions, byte[] Bytes)
    {
        public static Tensor F32(params float[] values) => new(GgmlType.F32, [values.Length], values.SelectMany(BitConverter.GetBytes).ToArray());
    }

    /// <summary>Copies <paramref name="source"/> to <paramref name="destination"/>; a key mapped to null is removed, others replaced or added.</summary>
    public static void Rewrite(string source, string destination, IReadOnlyDictionary<string, GgufValue?>? metadata = null,
        IReadOnlyDictionary<string, Tensor?>? tensors = null)
    {
        metadata ??= new Dictionary<string, GgufValue?>();
        tensors ??= new Dictionary<string, Tensor?>();
        using var file = GgufFile.Open(source);
        var writer = new GgufWriter();
        foreach (var (key, value) in file.MetadataInOrder)
            if (!metadata.TryGetValue(key, out var replaced)) writer.Add(key, value);
            else if (replaced is not null) writer.Add(key, replaced);
        foreach (var (key, value) in metadata)
            if (value is not null && !file.Metadata.ContainsKey(key)) writer.Add(key, value);
        foreach (var info in file.Tensors)
            if (!tensors.TryGetValue(info.Name, out var replaced)) writer.AddTensor(info.Name, info.Type, info.Dimensions, file.TensorBytes(info).ToArray());
            else if (replaced is not null) writer.AddTensor(info.Name, replaced.Type, replaced.Dimensions, replaced.Bytes);
        foreach (var (name, tensor) in tensors)
            if (tensor is not null && !file.TryGetTensor(name, out _)) writer.AddTensor(name, tensor.Type, tensor.Dimensions, tensor.Bytes);
        writer.WriteTo(destination);
    }

    /// <summary>A valid generated GGUF of <paramref name="spec"/> in <paramref name="dir"/>, rewritten with the given changes; returns the loader's refusal.</summary>
    public static ModelFormatException Refusal(string dir, SyntheticModelSpec spec, IReadOnlyDictionary<string, GgufValue?>? metadata = null,
        IReadOnlyDictionary<string, Tensor?>? tensors = null)
    {
        var valid = Path.Combine(dir, "valid.gguf");
        var edited = Path.Combine(dir, "edited.gguf");
        SyntheticModel.WriteGguf(spec, valid);
        using (GgufModelLoader.Load(valid)) { }
        Rewrite(valid, edited, metadata, tensors);
        return Assert.Throws<ModelFormatException>(() => GgufModelLoader.Load(edited));
    }
}
