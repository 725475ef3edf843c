using Bulwark.Engine.Formats;
using Bulwark.Engine.Kernels.Reference;
using Bulwark.Engine.Memory;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Model.Weights;

namespace Bulwark.Engine.Model.Loading;

/// <summary>
/// Builds <see cref="LlamaWeights"/> from any <see cref="ITensorSource"/>, checking that every
/// tensor the config calls for exists with exactly the expected shape and a supported type.
/// With <see cref="ModelLoadOptions.QuantizeTo"/>, float matrices are quantized into memory the
/// weights own; when that leaves nothing pointing into the source files, they are closed at once,
/// so the float copy is not kept.
/// </summary>
public sealed unsafe class WeightsBuilder(LlamaConfig config, ITensorSource source, TensorNames names, ModelLoadOptions? load = null)
{
    private readonly ModelLoadOptions _load = load ?? ModelLoadOptions.None;
    private readonly List<WeightMatrix> _quantized = [], _repacked = [];
    private readonly List<string> _keptAsStored = [];
    private long _bytesBefore, _bytesAfter;

    /// <summary>AWQ/GPTQ linear layers, repacked at load; null for every other checkpoint.</summary>
    private readonly Int4Matrices? _int4 = config.Int4 is { } int4 ? new Int4Matrices(source, int4) : null;

    /// <param name="owned">The source files the matrices point into: kept open by the weights, or disposed here when no matrix needs them.</param>
    public LlamaWeights Build(IReadOnlyList<IDisposable> owned, ReadOnlySpan<float> ropeFrequencyFactors = default)
    {
        try
        {
            var weights = BuildMatrices(owned, ropeFrequencyFactors);
            Report();
            return weights;
        }
        catch
        {
            foreach (var m in _quantized.Concat(_repacked)) m.Dispose();
            throw;
        }
    }

    private LlamaWeights BuildMatrices(IReadOnlyList<IDisposable> owned, ReadOnlySpan<float> ropeFrequencyFactors)
    {
        var c = config;
        var embedding = Matrix(names.TokenEmbedding, c.VocabularySize, c.EmbeddingLength);
        var layers = new List<LayerWeights>(c.LayerCount);
        for (var i = 0; i < c.LayerCount; i++)
        {
            string N(string part) => names.Layer(i, part);
            var (query, key, value) = FusedQkv(N) ?? (Matrix(N(TensorNames.Query), c.QueryLength, c.EmbeddingLength),
                Matrix(N(TensorNames.Key), c.KeyValueLength, c.EmbeddingLength), Matrix(N(TensorNames.Value), c.KeyValueLength, c.EmbeddingLength));
            WeightMatrix? gate = null, up = null, down = null;
            var experts = c.IsMixtureOfExperts ? Experts(i) : null;
            if (experts is null)
            {
                (gate, up) = c.Architecture == ModelArchitecture.Phi3 ? FusedGateUp(N(TensorNames.GateUp))
                    : (Matrix(N(TensorNames.Gate), c.FeedForwardLength, c.EmbeddingLength), Matrix(N(TensorNames.Up), c.FeedForwardLength, c.EmbeddingLength));
                down = Matrix(N(TensorNames.Down), c.EmbeddingLength, c.FeedForwardLength);
            }
            var gemma = c.Gemma is not null;
            layers.Add(new LayerWeights
            {
                AttentionNorm = Norm(N(TensorNames.AttentionNorm), c.EmbeddingLength),
                Query = query,
                Key = key,
                Value = value,
                Output = Matrix(N(TensorNames.AttentionOutput), c.EmbeddingLength, c.QueryLength),
                QueryBias = c.HasQkvBias ? Vector(N(TensorNames.QueryBias), c.QueryLength) : null,
                KeyBias = c.HasQkvBias ? Vector(N(TensorNames.KeyBias), c.KeyValueLength) : null,
                ValueBias = c.HasQkvBias ? Vector(N(TensorNames.ValueBias), c.KeyValueLength) : null,
                QueryNorm = c.HasQkNorm ? Norm(N(TensorNames.QueryNorm), c.HeadDim) : null,
                KeyNorm = c.HasQkNorm ? Norm(N(TensorNames.KeyNorm), c.HeadDim) : null,
                PostAttentionNorm = gemma ? Norm(N(TensorNames.PostAttentionNorm), c.EmbeddingLength) : null,
                PostFeedForwardNorm = gemma ? Norm(N(TensorNames.PostFeedForwardNorm), c.EmbeddingLength) : null,
                FeedForwardNorm = Norm(N(TensorNames.FeedForwardNorm), c.EmbeddingLength),
                Gate = gate,
                Up = up,
                Down = down,
                Experts = experts,
            });
        }
        var outputNorm = Norm(names.OutputNorm, c.EmbeddingLength);
        var output = c.TiedOutputHead ? embedding : Matrix(names.Output, c.VocabularySize, c.EmbeddingLength);
        if (!ropeFrequencyFactors.IsEmpty && ropeFrequencyFactors.Length != c.HeadDim / 2)
            throw new ModelFormatException(source.Location, "rope_freqs.weight", $"needs {c.HeadDim / 2} factors; got {ropeFrequencyFactors.Length}");
        var frequencies = c.RopeScaling.InverseFrequencies(c.HeadDim, c.RopeTheta, c.RopeScaling.ShortFactors is { } shortFactors ? shortFactors.Values : ropeFrequencyFactors);
        var longFrequencies = c.RopeScaling.LongFactors is { } longFactors ? c.RopeScaling.InverseFrequencies(c.HeadDim, c.RopeTheta, longFactors.Values) : null;
        // Gemma 3's local layers: their own base, unscaled.
        var local = c.Gemma is { LocalRopeTheta: > 0 } g ? RopeScaling.None.InverseFrequencies(c.HeadDim, g.LocalRopeTheta) : null;
        // Every matrix the forward pass multiplies by (not the embedding table, which is only looked up).
        foreach (var layer in layers)
            foreach (var matrix in layer.Matrices)
                matrix.PrepareForKernels(source.IsFileMapped);
        output.PrepareForKernels(source.IsFileMapped);
        // The embedding table is only looked up, row by row: read those rows from the file rather than
        // fault its mapping in (unless a tied output head still multiplies by the mapped rows).
        if (source.IsFileMapped && embedding.Data != null && (!ReferenceEquals(output, embedding) || output.IsPacked)
            && source.TryGet(names.TokenEmbedding, out var embeddingView) && embeddingView.FilePath is { } embeddingFile
            && embeddingView.Data == embedding.Data)
            embedding.ReadRowsFromFile(embeddingFile, embeddingView.FileOffset);
        // LlamaWeights disposes every matrix (quantized copies included) and then what it owns.
        if (_load.QuantizeTo is null || _keptAsStored.Count > 0)
            return new LlamaWeights(embedding, layers, outputNorm, output, frequencies, owned)
                { LongRopeInverseFrequencies = longFrequencies, LongRopeAbove = c.RopeScaling.OriginalContextLength, LocalRopeInverseFrequencies = local };
        // Every matrix now lives in its own quantized memory and every vector was copied: unmap the files.
        foreach (var o in owned) o.Dispose();
        return new LlamaWeights(embedding, layers, outputNorm, output, frequencies, [])
            { LongRopeInverseFrequencies = longFrequencies, LongRopeAbove = c.RopeScaling.OriginalContextLength, LocalRopeInverseFrequencies = local };
    }

    private void Report()
    {
        var mib = (double)(1 << 20);
        if (_repacked.Count > 0)
            _load.Notice?.Invoke($"repacked {_repacked.Count} {config.Int4} matrices to Q4_1 at load ({_repacked.Sum(m => m.RowBytes * m.Rows) / mib:0.#} MiB)");
        if (_load.QuantizeTo is not { } target || _load.Notice is not { } notice) return;
        var line = $"quantized {_quantized.Count} matrices to {target} at load ({_bytesBefore / mib:0.#} MiB -> {_bytesAfter / mib:0.#} MiB)";
        if (_keptAsStored.Count > 0)
            line += $"; {_keptAsStored.Count} left as stored ({string.Join(", ", _keptAsStored.Take(3))}{(_keptAsStored.Count > 3 ? ", ..." : "")})";
        notice(line);
    }

    private TensorView Require(string name, params long[] expected)
    {
        if (!source.TryGet(name, out var tensor))
            throw new ModelFormatException(source.Location, name, _int4?.IsPacked(name) == true
                ? $"is stored packed ({config.Int4}), which this layer cannot use (Phi-3's fused matrices and norms/embeddings must be unquantized)"
                : "tensor is missing");
        if (!tensor.Shape.SequenceEqual(expected))
            throw new ModelFormatException(source.Location, name,
                $"shape [{string.Join(", ", tensor.Shape)}] does not match the config's [{string.Join(", ", expected)}]");
        if (!Dequantize.IsSupported(tensor.Type))
            throw new ModelFormatException(source.Location, name, $"weight type {tensor.Type} is not supported (supported: {Dequantize.SupportedList})");
        return tensor;
    }

    /// <summary>
    /// Phi-3's q/k/v as three views of the rows of its fused matrix (no copy: the file's pages stay the only one);
    /// null when the layer stores them apart (GGUF allows both; Hugging Face Phi-3 always fuses).
    /// </summary>
    private (WeightMatrix, WeightMatrix, WeightMatrix)? FusedQkv(Func<string, string> name)
    {
        var c = config;
        var fused = name(TensorNames.QueryKeyValue);
        if (c.Architecture != ModelArchitecture.Phi3 || (!source.TryGet(fused, out _) && source.TryGet(name(TensorNames.Query), out _)))
            return null;
        var t = Require(fused, c.QueryLength + 2L * c.KeyValueLength, c.EmbeddingLength);
        return (Rows(t, 0, c.QueryLength), Rows(t, c.QueryLength, c.KeyValueLength), Rows(t, c.QueryLength + c.KeyValueLength, c.KeyValueLength));
    }

    /// <summary>Phi-3's gate and up as two views of its fused matrix: gate rows first, as transformers' chunk(2) and ggml's swiglu split it.</summary>
    private (WeightMatrix, WeightMatrix) FusedGateUp(string name)
    {
        var t = Require(name, 2L * config.FeedForwardLength, config.EmbeddingLength);
        return (Rows(t, 0, config.FeedForwardLength), Rows(t, config.FeedForwardLength, config.FeedForwardLength));
    }

    private WeightMatrix Matrix(string name, int rows, int columns)
    {
        if (_int4?.TryLoad(name, rows, columns) is { } repacked)
        {
            _repacked.Add(repacked);
            return repacked;
        }
        return Rows(Require(name, rows, columns), 0, rows);
    }

    /// <summary>
    /// Layer <paramref name="layer"/>'s router and experts: each expert's gate/up/down a view of its rows of the merged
    /// 3-D tensor (GGUF), or its own tensors where the format stores them apart (Hugging Face). Every shape checked against the config.
    /// </summary>
    private ExpertWeights Experts(int layer)
    {
        var c = config;
        var (count, width, dim) = (c.ExpertCount, c.ExpertFeedForwardLength, c.EmbeddingLength);
        WeightMatrix[] Part(string merged, string part, int rows, int columns)
        {
            var parts = new WeightMatrix[count];
            if (names.Expert is not { } expert)
            {
                var t = Require(names.Layer(layer, merged), count, rows, columns);
                for (var e = 0; e < count; e++) parts[e] = Rows(t, e * rows, rows, $"{t.Name}[expert {e}]");
                return parts;
            }
            for (var e = 0; e < count; e++) parts[e] = Matrix(expert(layer, e, part), rows, columns);
            return parts;
        }
        return new ExpertWeights
        {
            // Never quantized at load: the router stays as stored, as llama.cpp's quantizer and `models quantize` keep it.
            Router = Rows(Require(names.Layer(layer, TensorNames.Router), count, dim), 0, count, quantize: false),
            Gate = Part(TensorNames.GateExperts, TensorNames.Gate, width, dim),
            Up = Part(TensorNames.UpExperts, TensorNames.Up, width, dim),
            Down = Part(TensorNames.DownExperts, TensorNames.Down, dim, width),
        };
    }

    /// <summary>Rows [<paramref name="first"/>, first + <paramref name="rows"/>) of a checked tensor (2-D, or 3-D read as its rows one after another) as a matrix, quantized at load when asked.</summary>
    private WeightMatrix Rows(TensorView t, int first, int rows, string? viewName = null, bool quantize = true)
    {
        var columns = checked((int)t.Shape[^1]);
        var name = viewName ?? (t.Shape[0] == rows ? t.Name : $"{t.Name}[{first}..{first + rows})");
        var stored = new WeightMatrix(name, t.Type, rows, columns, t.Data + first * GgmlTypes.ByteSize(t.Type, columns));
        if (_load.QuantizeTo is not { } target) return stored;
        if (!quantize)
        {
            _keptAsStored.Add($"{name} {t.Type}");
            return stored;
        }
        // The same rule as `bulwark models quantize` (GgufRequantizer): float matrices whose rows are whole blocks.
        if (t.Type is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16) || columns % GgmlTypes.BlockSize(target) != 0)
        {
            _keptAsStored.Add($"{name} {t.Type}");
            return stored;
        }
        var quantized = stored.Quantize(target);
        // The float rows were read once; hand their pages back now so peak memory holds one float matrix, not all of them.
        if (source.IsFileMapped) MappedPages.Release(stored.Data, stored.RowBytes * rows);
        _quantized.Add(quantized);
        _bytesBefore += stored.RowBytes * rows;
        _bytesAfter += quantized.RowBytes * rows;
        return quantized;
    }

    /// <summary>A norm's weights, with the format's offset added (Hugging Face Gemma's 1 + w).</summary>
    private NativeBuffer Norm(string name, int length)
    {
        var buffer = Vector(name, length);
        if (names.NormWeightOffset != 0)
            foreach (ref var w in buffer.Span) w += names.NormWeightOffset;
        return buffer;
    }

    /// <summary>Norm weights and biases are tiny; they are converted once to float32.</summary>
    public NativeBuffer Vector(string name, int length)
    {
        var t = Require(name, length);
        var buffer = new NativeBuffer(length);
        Dequantize.Row(t.Type, new ReadOnlySpan<byte>(t.Data, (int)t.ByteSize), buffer.Span);
        return buffer;
    }
}
