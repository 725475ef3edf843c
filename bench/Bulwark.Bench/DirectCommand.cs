namespace Bulwark.Bench;

/// <summary>
/// The benchmarks parsed by <see cref="BenchArgs"/> (kernels, model, tokenizers, sampler): <c>--help</c> prints the
/// usage and succeeds, and a bad option ends with its message and exit code 2 rather than a stack trace.
/// </summary>
internal static class DirectCommand
{
    public static int Run(string name, Func<string[], int> run, string[] args, string usage, TextWriter output, TextWriter error)
    {
        if (args.Any(a => a is "--help" or "-h"))
        {
            output.WriteLine(usage);
            return 0;
        }
        try
        {
            return run(args);
        }
        catch (ArgumentException e)
        {
            error.WriteLine($"bench {name}: {e.Message}");
            return 2;
        }
    }
}
