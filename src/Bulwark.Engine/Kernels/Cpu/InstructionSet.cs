using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Bulwark.Engine.Kernels.Cpu;

/// <summary>The kernel paths, from the plain scalar reference up; a higher value needs a newer CPU.</summary>
public enum InstructionSet
{
    /// <summary>Plain C#: the reference every other path is tested against.</summary>
    Scalar,

    /// <summary>Portable <c>Vector256</c>/<c>Vector128</c> code (any CPU .NET accelerates, including Arm).</summary>
    Portable,

    /// <summary>x86 AVX2 + FMA: <c>vpmaddubsw</c>/<c>vpmaddwd</c> int8 dot products on 256 bits.</summary>
    Avx2,

    /// <summary>AVX-VNNI: <c>vpdpbusd</c> int8 dot products on 256 bits.</summary>
    AvxVnni,

    /// <summary>AVX-512 BW: int8 dot products on 512 bits (two blocks per instruction).</summary>
    Avx512,
}

/// <summary>
/// Which <see cref="InstructionSet"/> the model's kernels use: the best this CPU supports, capped by
/// <see cref="Max"/> (tests and benchmarks lower it to force a path; <c>BULWARK_MAX_ISA</c> sets it at start-up).
/// </summary>
public static class KernelIsa
{
    /// <summary>The best path this CPU and runtime support.</summary>
    public static InstructionSet Detected { get; } = Detect();

    private static InstructionSet _max = ParseEnvironment();

    /// <summary>Upper bound on the path used; the default lets the best detected path run.</summary>
    public static InstructionSet Max
    {
        get => _max;
        set => _max = value;
    }

    /// <summary>The path the model's kernels use now: the best supported one at or below <see cref="Max"/>.</summary>
    public static InstructionSet Active
    {
        get
        {
            for (var isa = _max; isa > InstructionSet.Scalar; isa--)
                if (IsSupported(isa)) return isa;
            return InstructionSet.Scalar;
        }
    }

    public static bool IsSupported(InstructionSet isa) => isa switch
    {
        InstructionSet.Scalar => true,
        InstructionSet.Portable => Vector256.IsHardwareAccelerated,
        InstructionSet.Avx2 => Avx2.IsSupported && Fma.IsSupported,
        InstructionSet.AvxVnni => AvxVnni.IsSupported && Avx2.IsSupported && Fma.IsSupported,
        InstructionSet.Avx512 => Avx512BW.IsSupported && Avx512BW.VL.IsSupported && Avx512F.VL.IsSupported && Avx2.IsSupported && Fma.IsSupported,
        _ => false,
    };

    private static InstructionSet Detect()
    {
        for (var isa = InstructionSet.Avx512; isa > InstructionSet.Scalar; isa--)
            if (IsSupported(isa)) return isa;
        return InstructionSet.Scalar;
    }

    private static InstructionSet ParseEnvironment()
    {
        var value = Environment.GetEnvironmentVariable("BULWARK_MAX_ISA");
        if (string.IsNullOrEmpty(value)) return InstructionSet.Avx512;
        return Enum.TryParse<InstructionSet>(value, ignoreCase: true, out var isa) && Enum.IsDefined(isa)
            ? isa
            : throw new InvalidOperationException($"BULWARK_MAX_ISA must be one of {string.Join(", ", Enum.GetNames<InstructionSet>())}; got \"{value}\"");
    }
}
