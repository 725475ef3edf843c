using System.CommandLine;
using System.Runtime.Intrinsics.X86;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Kernels.Cpu;
using Bulwark.Engine.Kernels.Reference;
using Bulwark.Server;

namespace Bulwark.Cli.Commands;

/// <summary><c>bulwark info</c>: version, data directory, the CPU features the kernels can use and the kernel each weight type runs on.</summary>
internal static class InfoCommand
{
    /// <summary>Every weight type a model file may hold that the engine runs, in the order people meet them.</summary>
    private static readonly GgmlType[] WeightTypes =
    [
        GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.Q3_K,
        GgmlType.Q2_K, GgmlType.Q4_0, GgmlType.Q5_0, GgmlType.Q4_1, GgmlType.Q5_1, GgmlType.IQ4_NL, GgmlType.IQ4_XS,
    ];

    public static Command Create()
    {
        var dataDir = CommonOptions.DataDir();
        var command = new Command("info", "Show the version, the data directory, the CPU features Bulwark can use and the kernel each weight type runs on.")
        {
            dataDir,
        };
        command.SetAction(result =>
        {
            var output = result.InvocationConfiguration.Output;
            var dir = DataDirectory.Resolve(result.GetValue(dataDir));
            output.WriteLine($"bulwark {typeof(InfoCommand).Assembly.GetName().Version}");
            output.WriteLine($"data directory: {dir.Root}");
            output.WriteLine($"cores: {Environment.ProcessorCount}");
            output.WriteLine($"cpu: avx2={Avx2.IsSupported} fma={Fma.IsSupported} avx512bw={Avx512BW.IsSupported} avxvnni={AvxVnni.IsSupported}");
            var isa = KernelIsa.Active;
            output.WriteLine($"kernels ({isa}; BULWARK_MAX_ISA lowers it):");
            foreach (var type in WeightTypes)
                output.WriteLine($"  {type,-7} {MatMul.Describe(type, isa)}");
            output.WriteLine($"  AWQ/GPTQ 4-bit safetensors are repacked at load to Q4_1: {MatMul.Describe(GgmlType.Q4_1, isa)}");
            output.WriteLine($"  other types are refused at load, naming the type and the tensor (runnable: {Dequantize.SupportedList})");
            return 0;
        });
        return command;
    }
}
