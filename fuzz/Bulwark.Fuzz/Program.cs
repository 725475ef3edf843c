using Bulwark.Fuzz;
using SharpFuzz;

// bulwark-fuzz TARGET               read one input from stdin and run it once
// bulwark-fuzz TARGET FILE...       read each file, printing "accepted" or the refusal (triage)
// bulwark-fuzz TARGET --afl         AFL fork-server loop (under afl-fuzz, after `sharpfuzz` instrumentation)
// bulwark-fuzz TARGET --libfuzzer   libFuzzer loop (under libfuzzer-dotnet)
if (args.Length == 0 || !FuzzTargets.Names.Contains(args[0]))
{
    Console.Error.WriteLine($"usage: bulwark-fuzz {string.Join("|", FuzzTargets.Names)} [--afl | --libfuzzer | FILE...]  (stdin when no FILE)");
    return 2;
}
var target = args[0];

switch (args.Length > 1 ? args[1] : null)
{
    case "--afl":
        Fuzzer.OutOfProcess.Run(stream => FuzzTargets.Run(target, ReadAll(stream)));
        return 0;
    case "--libfuzzer":
        Fuzzer.LibFuzzer.Run(span => FuzzTargets.Run(target, span.ToArray()));
        return 0;
    case null:
        using (var stdin = Console.OpenStandardInput()) FuzzTargets.Run(target, ReadAll(stdin));
        return 0;
    default:
        foreach (var file in args.Skip(1))
        {
            try
            {
                FuzzTargets.Read(target, File.ReadAllBytes(file));
                Console.WriteLine($"{file}: accepted");
            }
            catch (Exception e) when (FuzzTargets.IsRefusal(e))
            {
                Console.WriteLine($"{file}: refused: {e.Message}");
            }
        }
        return 0;
}

static byte[] ReadAll(Stream stream)
{
    using var buffer = new MemoryStream();
    stream.CopyTo(buffer);
    return buffer.ToArray();
}
