using Bulwark.Engine.Formats;
using Bulwark.Engine.Formats.Gguf;
using Bulwark.Engine.Kernels.Reference;

namespace Bulwark.Engine.Conversion;

/// <summary>
/// Writes a copy of a full-precision GGUF model with its matrices quantized to Q8_0 or Q4_0
/// (ggml's reference rounding, so the bytes match llama.cpp's <c>llama-quantize</c> for these
/// types without an importance matrix). Metadata is copied in order with <c>general.file_type</c>
/// updated; vectors (norms, biases), the experts' router and tensors whose rows are not whole blocks stay as they are
/// (merged 3-D expert tensors are quantized row by row like any matrix).
/// Tensors are streamed one row at a time, so memory use does not grow with the model.
/// </summary>
public static class GgufRequantizer
{
    /// <summary>Writes <paramref name="destination"/>; <paramref name="progress"/> receives source bytes consumed so far.</summary>
    /// <exception cref="ModelFormatException">The source holds already-quantized matrices (re-quantizing compounds the error).</exception>
    public static unsafe void Requantize(string source, string destination, GgmlType target, IProgress<long>? progress = null, CancellationToken ct = default)
    {
        if (target is not (GgmlType.Q8_0 or GgmlType.Q4_0))
            throw new ArgumentException($"quantizing to {target} is not supported (supported: Q8_0, Q4_0)", nameof(target));
        var fileType = GgmlTypes.LlamaFileType(target);
        using var file = GgufFile.Open(source);
        var writer = new GgufWriter();
        foreach (var (key, value) in file.MetadataInOrder)
            writer.Add(key, key == "general.file_type" ? GgufValue.Of(fileType) : value);
        if (!file.Metadata.ContainsKey("general.file_type")) writer.Add("general.file_type", fileType);

        long consumed = 0;
        foreach (var tensor in file.Tensors)
        {
            var info = tensor;
            if (!IsMatrix(info) || info.Columns % GgmlTypes.BlockSize(target) != 0)
            {
                var bytes = file.TensorBytes(info).ToArray();
                writer.AddTensor(info.Name, info.Type, info.Dimensions, bytes);
                consumed += bytes.Length;
                continue;
            }
            if (info.Type is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16))
                throw new ModelFormatException(source, info.Name,
                    $"is already {info.Type}; quantize from the full-precision (F32, F16 or BF16) version instead, since re-quantizing compounds the error");
            var columns = checked((int)info.Columns);
            var rows = info.Rows;
            var sourceRowBytes = checked((int)GgmlTypes.ByteSize(info.Type, columns));
            var targetRowBytes = checked((int)GgmlTypes.ByteSize(target, columns));
            var start = consumed;
            writer.AddTensor(info.Name, target, info.Dimensions, stream =>
            {
                var floats = new float[columns];
                var output = new byte[targetRowBytes];
                var basePointer = file.TensorPointer(info);
                for (long r = 0; r < rows; r++)
                {
                    ct.ThrowIfCancellationRequested();
                    var row = new ReadOnlySpan<byte>(basePointer + r * sourceRowBytes, sourceRowBytes);
                    Dequantize.Row(info.Type, row, floats);
                    Quantize.Row(target, floats, output);
                    stream.Write(output);
                    if ((r & 255) == 255) progress?.Report(start + (r + 1) * sourceRowBytes);
                }
                progress?.Report(start + rows * sourceRowBytes);
            });
            consumed += info.ByteSize;
        }

        var temp = destination + "." + Guid.NewGuid().ToString("N") + ".tmp";
        try
        {
            writer.WriteTo(temp);
            File.Move(temp, destination, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>2-D weights and merged 3-D expert tensors; not the experts' router, which llama.cpp's quantizer keeps as it is too.</summary>
    private static bool IsMatrix(GgufTensorInfo tensor) =>
        tensor.Dimensions.Length is 2 or 3 && tensor.Name.EndsWith(".weight", StringComparison.Ordinal)
        && !tensor.Name.EndsWith("." + Model.Loading.TensorNames.Router, StringComparison.Ordinal);
}
