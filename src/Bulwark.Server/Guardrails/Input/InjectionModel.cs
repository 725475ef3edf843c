using System.Buffers.Binary;
using System.Text;

namespace Bulwark.Server.Guardrails.Input;

/// <summary>
/// The logistic-regression part of the injection scanner: weights over
/// <see cref="InjectionFeatures"/>, a bias, and the two calibrated thresholds on its probability.
/// The shipped file (<c>injection-model.bin</c>, embedded in this assembly) is produced by
/// <c>bulwark guard train</c>; the format is little-endian:
/// magic <c>BWINJ</c>, version (3; version 2 files, without the hidden-unit count, are read too), hash bits, n-gram range, feature layout flags, rule ids (their order is the order of the
/// rule features), bias, flag and block thresholds, then one float32 weight per dimension, then the number of hidden units H (0: none) and, when H > 0,
/// the hidden layer's input weights (dimension × H, row per feature), its H biases and H output weights.
/// </summary>
public sealed class InjectionModel
{
    public const string ResourceName = "Bulwark.Server.Guardrails.Input.injection-model.bin";
    private static readonly byte[] Magic = "BWINJ"u8.ToArray();
    private const int Version = 3;
    private static readonly Lazy<InjectionModel> DefaultLazy = new(LoadEmbedded);

    public InjectionModel(InjectionFeatures features, float[] weights, float bias, float flagThreshold, float blockThreshold, InjectionHiddenLayer? hidden = null)
    {
        if (hidden is not null && hidden.InputWeights.Length != features.Dimension * hidden.Units)
            throw new ArgumentException($"hidden layer must have {features.Dimension} x {hidden.Units} input weights for these features; got {hidden.InputWeights.Length}", nameof(hidden));
        if (weights.Length != features.Dimension)
            throw new ArgumentException($"weights must have {features.Dimension} entries for these features; got {weights.Length}", nameof(weights));
        CheckThreshold(flagThreshold, nameof(flagThreshold));
        CheckThreshold(blockThreshold, nameof(blockThreshold));
        Features = features;
        Weights = weights;
        Bias = bias;
        FlagThreshold = flagThreshold;
        BlockThreshold = blockThreshold;
        Hidden = hidden;
    }

    /// <summary>The model shipped with Bulwark.</summary>
    public static InjectionModel Default => DefaultLazy.Value;

    public InjectionFeatures Features { get; }
    public float[] Weights { get; }
    public float Bias { get; }

    /// <summary>The non-linear part (ReLU units over the same features), added to the linear logit; null for a purely linear model.</summary>
    public InjectionHiddenLayer? Hidden { get; }

    /// <summary>Probability from which a text is flagged (calibrated to the flag policy's false-positive target).</summary>
    public float FlagThreshold { get; }

    /// <summary>Probability from which a text is blocked under the block policy (a stricter false-positive target).</summary>
    public float BlockThreshold { get; }

    public InjectionModel WithThresholds(float flag, float block) => new(Features, Weights, Bias, flag, block, Hidden);

    /// <summary>Probability that the text is an injection attempt.</summary>
    public double Score(int[] indices, float[] values) => Sigmoid(Logit(indices, values));

    /// <summary>Log-odds of one instance: bias + linear weights · x, plus the hidden layer's output when there is one.</summary>
    public double Logit(int[] indices, float[] values)
    {
        double z = Bias;
        for (var i = 0; i < indices.Length; i++) z += Weights[indices[i]] * (double)values[i];
        return Hidden is null ? z : z + Hidden.Output(indices, values);
    }

    /// <summary>The text's probability: the highest over its instances (see <see cref="InjectionFeatures.Instances"/>).</summary>
    public double Score(List<(int[] Indices, float[] Values)> instances)
    {
        var best = 0.0;
        foreach (var (indices, values) in instances) best = Math.Max(best, Score(indices, values));
        return best;
    }

    public static double Sigmoid(double z) => z >= 0 ? 1 / (1 + Math.Exp(-z)) : Math.Exp(z) / (1 + Math.Exp(z));

    public void Write(Stream stream)
    {
        using var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true); // BinaryWriter is little-endian on every platform
        w.Write(Magic);
        w.Write(Version);
        w.Write(Features.HashBits);
        w.Write(Features.MinN);
        w.Write(Features.MaxN);
        w.Write((int)Features.Layout);
        w.Write(Features.RuleIds.Count);
        foreach (var id in Features.RuleIds) w.Write(id);
        w.Write(Bias);
        w.Write(FlagThreshold);
        w.Write(BlockThreshold);
        foreach (var weight in Weights) w.Write(weight);
        w.Write(Hidden?.Units ?? 0);
        if (Hidden is null) return;
        foreach (var weight in Hidden.InputWeights) w.Write(weight);
        foreach (var weight in Hidden.Biases) w.Write(weight);
        foreach (var weight in Hidden.OutputWeights) w.Write(weight);
    }

    public byte[] ToBytes()
    {
        using var memory = new MemoryStream();
        Write(memory);
        return memory.ToArray();
    }

    public static InjectionModel Read(Stream stream)
    {
        using var r = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
        try
        {
            if (!r.ReadBytes(Magic.Length).AsSpan().SequenceEqual(Magic)) throw new InvalidDataException("not an injection model file (bad magic)");
            var version = r.ReadInt32();
            // Version 2 (before the hidden layer) is version 3 without the hidden-unit count: files trained then still load.
            if (version is not (2 or Version)) throw new InvalidDataException($"injection model version must be 2 or {Version}; got {version}");
            var hashBits = r.ReadInt32();
            var minN = r.ReadInt32();
            var maxN = r.ReadInt32();
            var layout = (InjectionFeatureLayout)r.ReadInt32();
            var ruleCount = r.ReadInt32();
            if (ruleCount is < 0 or > 1024) throw new InvalidDataException($"injection model rule count must be within 0..1024; got {ruleCount}");
            var ids = new string[ruleCount];
            for (var i = 0; i < ruleCount; i++) ids[i] = r.ReadString();
            var features = new InjectionFeatures(hashBits, minN, maxN, ids, layout);
            var bias = r.ReadSingle();
            var flag = r.ReadSingle();
            var block = r.ReadSingle();
            var weights = ReadFloats(r, features.Dimension, "weights");
            var units = version == 2 ? 0 : r.ReadInt32();
            if (units is < 0 or > MaxHiddenUnits) throw new InvalidDataException($"injection model hidden units must be within 0..{MaxHiddenUnits}; got {units}");
            var hidden = units == 0 ? null
                : new InjectionHiddenLayer(ReadFloats(r, features.Dimension * units, "hidden input weights"), ReadFloats(r, units, "hidden biases"), ReadFloats(r, units, "hidden output weights"));
            if (stream.CanSeek && stream.Position != stream.Length) throw new InvalidDataException("injection model has trailing bytes");
            return new InjectionModel(features, weights, bias, flag, block, hidden);
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException("injection model is truncated");
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new InvalidDataException("injection model header is invalid: " + e.Message);
        }
    }

    /// <summary>Most hidden units a model file may declare (a 2^15-bucket model with 64 units is 8 MiB).</summary>
    public const int MaxHiddenUnits = 256;

    private static float[] ReadFloats(BinaryReader r, int count, string what)
    {
        var bytes = r.ReadBytes(count * sizeof(float));
        if (bytes.Length != count * sizeof(float))
            throw new InvalidDataException($"injection model is truncated: {count} {what} expected, {bytes.Length / sizeof(float)} present");
        var values = new float[count];
        for (var i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(i * sizeof(float)));
        return values;
    }

    public static InjectionModel Load(string path)
    {
        using var file = File.OpenRead(path);
        return Read(file);
    }

    private static InjectionModel LoadEmbedded()
    {
        using var stream = typeof(InjectionModel).Assembly.GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"embedded resource {ResourceName} is missing from {typeof(InjectionModel).Assembly.GetName().Name}");
        return Read(stream);
    }

    private static void CheckThreshold(float value, string name)
    {
        if (!(value is >= 0f and <= 1f)) throw new ArgumentOutOfRangeException(name, value, $"{name} must be a probability within 0..1; got {value}");
    }
}

/// <summary>
/// One layer of ReLU units over the sparse features, whose weighted sum is added to the linear
/// logit (a wide-and-deep model): the linear part keeps what single n-grams say, the units can
/// form conjunctions a linear model cannot (a request phrased as an order *and* aimed at the
/// model's own instructions). Input weights are stored a row per feature, so a sparse instance
/// reads only its own rows.
/// </summary>
public sealed class InjectionHiddenLayer
{
    public InjectionHiddenLayer(float[] inputWeights, float[] biases, float[] outputWeights)
    {
        if (biases.Length == 0 || biases.Length != outputWeights.Length || inputWeights.Length % biases.Length != 0)
            throw new ArgumentException($"hidden layer needs as many biases as output weights (got {biases.Length} and {outputWeights.Length}) and input weights a multiple of them (got {inputWeights.Length})", nameof(biases));
        InputWeights = inputWeights;
        Biases = biases;
        OutputWeights = outputWeights;
    }

    public int Units => Biases.Length;
    public float[] InputWeights { get; }
    public float[] Biases { get; }
    public float[] OutputWeights { get; }

    /// <summary>Σ_j v_j · max(0, b_j + Σ_i x_i W_ij) for one sparse instance.</summary>
    public double Output(int[] indices, float[] values)
    {
        var units = Units;
        Span<double> a = units <= 128 ? stackalloc double[units] : new double[units];
        for (var j = 0; j < units; j++) a[j] = Biases[j];
        for (var i = 0; i < indices.Length; i++)
        {
            var row = InputWeights.AsSpan(indices[i] * units, units);
            double x = values[i];
            for (var j = 0; j < units; j++) a[j] += row[j] * x;
        }
        var z = 0.0;
        for (var j = 0; j < units; j++)
        {
            if (a[j] > 0) z += a[j] * OutputWeights[j];
        }
        return z;
    }
}
