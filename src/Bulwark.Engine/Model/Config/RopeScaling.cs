namespace Bulwark.Engine.Model.Config;

public enum RopeScalingKind
{
    None,
    /// <summary>Every frequency divided by <see cref="RopeScaling.Factor"/> (position interpolation).</summary>
    Linear,
    /// <summary>Llama 3.1's wavelength-dependent scaling (low frequencies scaled, high kept, smooth between).</summary>
    Llama3,
    /// <summary>
    /// Phi-3's LongRoPE ("su"): each frequency divided by a per-pair factor, the short set for contexts up to
    /// <see cref="RopeScaling.OriginalContextLength"/>, the long set beyond; cos and sin scaled by <see cref="RopeScaling.AttentionFactor"/>.
    /// </summary>
    LongRope,
}

/// <summary>How RoPE frequencies are stretched for long contexts, as config.json's rope_scaling describes it.</summary>
public sealed record RopeScaling(
    RopeScalingKind Kind,
    float Factor = 1f,
    float LowFrequencyFactor = 1f,
    float HighFrequencyFactor = 4f,
    int OriginalContextLength = 8192)
{
    public static readonly RopeScaling None = new(RopeScalingKind.None);

    /// <summary>LongRoPE's per-pair divisors for contexts up to <see cref="OriginalContextLength"/>; null for other kinds.</summary>
    public RopeFactors? ShortFactors { get; init; }

    /// <summary>LongRoPE's per-pair divisors for longer contexts; null for other kinds.</summary>
    public RopeFactors? LongFactors { get; init; }

    /// <summary>LongRoPE's scale of cos and sin (so of q and k after rotation); 1 otherwise.</summary>
    public float AttentionFactor { get; init; } = 1f;

    /// <summary>
    /// transformers' default LongRoPE attention factor, and llama.cpp's converter's: √(1 + ln s / ln original) with
    /// s = context / original, or 1 when s ≤ 1.
    /// </summary>
    public static float LongRopeAttentionFactor(int contextLength, int originalContextLength)
    {
        var scale = (double)contextLength / originalContextLength;
        return scale <= 1 ? 1f : (float)Math.Sqrt(1 + Math.Log(scale) / Math.Log(originalContextLength));
    }

    /// <summary>
    /// The LongRoPE factor set for a sequence context of <paramref name="contextLength"/> positions: llama.cpp's rule
    /// (<c>get_rope_factors</c>: long when the context per sequence exceeds the original), chosen once per cache, so the
    /// keys already cached never change rotation (transformers instead switches per forward on the current length).
    /// </summary>
    public RopeFactors? FactorsFor(int contextLength) =>
        Kind != RopeScalingKind.LongRope ? null : contextLength > OriginalContextLength ? LongFactors : ShortFactors;

    /// <summary>
    /// theta^(-2i/d) for each rotated pair i, with this scaling applied; <paramref name="frequencyFactors"/>
    /// (GGUF's rope_freqs.weight, which llama.cpp writes for Llama 3 models) divides them further.
    /// </summary>
    public float[] InverseFrequencies(int headDim, float theta, ReadOnlySpan<float> frequencyFactors = default)
    {
        var result = new float[headDim / 2];
        for (var i = 0; i < result.Length; i++)
        {
            var frequency = 1.0 / Math.Pow(theta, 2.0 * i / headDim);
            frequency = Kind switch
            {
                RopeScalingKind.Linear => frequency / Factor,
                RopeScalingKind.Llama3 => Llama3(frequency),
                _ => frequency,
            };
            if (!frequencyFactors.IsEmpty) frequency /= frequencyFactors[i];
            result[i] = (float)frequency;
        }
        return result;
    }

    /// <summary>
    /// Llama 3 scaling as llama.cpp's converter stores it in GGUF (<c>rope_freqs.weight</c>): per rotated pair,
    /// the number the unscaled frequency theta^(-2i/d) is divided by (1 kept, <see cref="Factor"/> scaled, between
    /// them the smooth blend's inverse). ggml divides by these factors; the result is <see cref="InverseFrequencies"/>.
    /// </summary>
    public float[] Llama3FrequencyFactors(int headDim, float theta)
    {
        if (Kind != RopeScalingKind.Llama3) throw new InvalidOperationException($"{Kind} scaling has no Llama 3 frequency factors");
        var result = new float[headDim / 2];
        for (var i = 0; i < result.Length; i++)
        {
            var frequency = 1.0 / Math.Pow(theta, 2.0 * i / headDim);
            result[i] = (float)(frequency / Llama3(frequency));
        }
        return result;
    }

    // transformers' _compute_llama3_parameters, per frequency.
    private double Llama3(double frequency)
    {
        var lowWavelength = OriginalContextLength / LowFrequencyFactor;
        var highWavelength = OriginalContextLength / HighFrequencyFactor;
        var wavelength = 2 * Math.PI / frequency;
        if (wavelength < highWavelength) return frequency;
        if (wavelength > lowWavelength) return frequency / Factor;
        var smooth = (OriginalContextLength / wavelength - LowFrequencyFactor) / (HighFrequencyFactor - LowFrequencyFactor);
        return (1 - smooth) * frequency / Factor + smooth * frequency;
    }
}

/// <summary>Per rotated pair, what RoPE's frequency is divided by; equal when the values are (so configs compare by value).</summary>
public sealed record RopeFactors(float[] Values)
{
    public bool Equals(RopeFactors? other) => other is not null && Values.AsSpan().SequenceEqual(other.Values);

    public override int GetHashCode() => Values.Length;
}
