using System.CommandLine;
using System.Runtime.Intrinsics.X86;
using Bulwark.Server;

namespace Bulwark.Cli.Commands;

/// <summary><c>bulwark info</c>: version, data directory and the CPU features the kernels can use.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var dataDir = CommonOptions.DataDir();
        var command = new Command("info", "Show the version, the data directory and the CPU features Bulwark can use.")
        {
            dataDir,
        };
        command.SetAction(result =>
        {
            var dir = DataDirectory.Resolve(result.GetValue(dataDir));
            Console.WriteLine($"bulwark {typeof(InfoCommand).Assembly.GetName().Version}");
            Console.WriteLine($"data directory: {dir.Root}");
            Console.WriteLine($"cores: {Environment.ProcessorCount}");
            Console.WriteLine($"cpu: avx2={Avx2.IsSupported} fma={Fma.IsSupported} avx512bw={Avx512BW.IsSupported} avxvnni={AvxVnni.IsSupported}");
            return 0;
        });
        return command;
    }
}
