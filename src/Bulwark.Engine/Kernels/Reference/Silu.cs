namespace Bulwark.Engine.Kernels.Reference;

/// <summary>SwiGLU's gate: gate[i] = silu(gate[i]) * up[i], with silu(x) = x / (1 + e^-x).</summary>
public static class Silu
{
    public static void GateInPlace(Span<float> gate, ReadOnlySpan<float> up)
    {
        for (var i = 0; i < gate.Length; i++)
        {
            var g = gate[i];
            gate[i] = g / (1f + MathF.Exp(-g)) * up[i];
        }
    }
}
