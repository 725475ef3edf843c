namespace Bulwark.Engine.Model.Config;

public enum RopeScalingKind
{
    None,
    /// <summary>Every frequency divided by <see cref="RopeScaling.Factor"/> (position interpolation).</summary>
    Linear,
    /// <summary>Llama 3.1's wavelength-dependent scaling (low frequencies scaled, high kept, smooth between).</summary>
    Llama3,
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
