using System.Buffers.Binary;
using System.Text;

namespace Bulwark.Server.Guardrails.Input;

/// <summary>
/// The logistic-regression part of the injection scanner: weights over
/// <see cref="InjectionFeatures"/>, a bias, and the two calibrated thresholds on its probability.
/// The shipped file (<c>injection-model.bin</c>, embedded in this assembly) is produced by
/// <c>bulwark guard train</c>; the format is little-endian:
/// magic <c>BWINJ</c>, version (2), hash bits, n-gram range, feature layout flags, rule ids (their order is the order of the
/// rule features), bias, flag and block thresholds, then one float32 weight per dimension.
/// </summary>
public sealed class InjectionModel
{
    public const string ResourceName = "Bulwark.Server.Guardrails.Input.injection-model.bin";
    private static readonly byte[] Magic = "BWINJ"u8.ToArray();
    private const int Version = 2;
    private static readonly Lazy<InjectionModel> DefaultLazy = new(LoadEmbedded);

    public InjectionModel(InjectionFeatures features, float[] weights, float bias, float flagThreshold, float blockThreshold)
    {
        if (weights.Length != features.Dimension)
            throw new ArgumentException($"weights must have {features.Dimension} entries for these features; got {weights.Length}", nameof(weights));
        CheckThreshold(flagThreshold, nameof(flagThreshold));
        CheckThreshold(blockThreshold, nameof(blockThreshold));
        Features = features;
        Weights = weights;
        Bias = bias;
        FlagThreshold = flagThreshold;
        BlockThreshold = blockThreshold;
    }

    /// <summary>The model shipped with Bulwark.</summary>
    public static InjectionModel Default => DefaultLazy.Value;

    public InjectionFeatures Features { get; }
    public float[] Weights { get; }
    public float Bias { get; }

    /// <summary>Probability from which a text is flagged (calibrated to the flag policy's false-positive target).</summary>
    public float FlagThreshold { get; }

    /// <summary>Probability from which a text is blocked under the block policy (a stricter false-positive target).</summary>
    public float BlockThreshold { get; }

    public InjectionModel WithThresholds(float flag, float block) => new(Features, Weights, Bias, flag, block);

    /// <summary>Probability that the text is an injection attempt.</summary>
    public double Score(int[] indices, float[] values)
    {
        double z = Bias;
        for (var i = 0; i < indices.Length; i++) z += Weights[indices[i]] * (double)values[i];
        return Sigmoid(z);
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
            if (version != Version) throw new InvalidDataException($"injection model version must be {Version}; got {version}");
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
            var bytes = r.ReadBytes(features.Dimension * sizeof(float));
            if (bytes.Length != features.Dimension * sizeof(float))
                throw new InvalidDataException($"injection model is truncated: {features.Dimension} weights expected, {bytes.Length / sizeof(float)} present");
            var weights = new float[features.Dimension];
            for (var i = 0; i < weights.Length; i++) weights[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(i * sizeof(float)));
            if (stream.CanSeek && stream.Position != stream.Length) throw new InvalidDataException("injection model has trailing bytes");
            return new InjectionModel(features, weights, bias, flag, block);
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
