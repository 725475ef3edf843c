using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Bulwark.Server.Redaction;

namespace Bulwark.Bench.Security;

/// <summary><c>bench/run security</c>: the overhead of auth + quotas + audit on a trivial request.</summary>
internal static class BenchSecurityCommand
{
    public static Command Create()
    {
        var iterations = new Option<int>("--iterations") { Description = "Measured requests per path (100 to 10000000).", DefaultValueFactory = _ => 50_000 };
        var warmup = new Option<int>("--warmup") { Description = "Unmeasured requests per path first (0 to 10000000).", DefaultValueFactory = _ => 5_000 };
        var json = new Option<bool>("--json") { Description = "Print the result as one JSON object." };
        var command = new Command("security",
            "Overhead of authentication + quotas + audit on a 1-token request, in-process, security on vs off in one run (p50/p99 µs).")
        { iterations, warmup, json };
        command.SetAction(async (r, ct) =>
        {
            var (output, error) = (r.InvocationConfiguration.Output, r.InvocationConfiguration.Error);
            var n = r.GetValue(iterations);
            var w = r.GetValue(warmup);
            if (n is < 100 or > 10_000_000) return Fail(error, $"--iterations must be between 100 and 10000000; got {n}");
            if (w is < 0 or > 10_000_000) return Fail(error, $"--warmup must be between 0 and 10000000; got {w}");
            var dir = Path.Combine(Path.GetTempPath(), "bulwark-bench-security-" + Guid.NewGuid().ToString("N"));
            try
            {
                var result = await SecurityOverheadBenchmark.RunAsync(dir, n, w, ct);
                if (r.GetValue(json))
                {
                    output.WriteLine(JsonSerializer.Serialize(new
                    {
                        iterations = result.Iterations, on_p50_us = result.OnP50, on_p99_us = result.OnP99, off_p50_us = result.OffP50,
                        off_p99_us = result.OffP99, overhead_p50_us = result.OverheadP50, overhead_p99_us = result.OverheadP99, audited = result.Audited,
                    }));
                    return 0;
                }
                string F(double v) => v.ToString("0.0", CultureInfo.InvariantCulture);
                output.WriteLine($"security overhead, {result.Iterations} requests per path, in-process, in-memory quotas, SQLite audit");
                output.WriteLine($"  security on : p50 {F(result.OnP50)} µs   p99 {F(result.OnP99)} µs");
                output.WriteLine($"  security off: p50 {F(result.OffP50)} µs   p99 {F(result.OffP99)} µs");
                output.WriteLine($"  overhead    : p50 {F(result.OverheadP50)} µs   p99 {F(result.OverheadP99)} µs   (target p50 <= 100 µs)");
                output.WriteLine($"  audit records written for the key: {result.Audited}");
                return 0;
            }
            // Expected failures (a benchmark request refused, a data directory that cannot be used): one line, as for a bad flag.
            catch (Exception e) when (e is InvalidOperationException or ArgumentException or FormatException)
            {
                return Fail(error, SecretRedactor.Redact(e.Message));
            }
            finally
            {
                try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
            }
        });
        return command;
    }

    private static int Fail(TextWriter error, string message)
    {
        error.WriteLine("error: " + message);
        return 1;
    }
}
