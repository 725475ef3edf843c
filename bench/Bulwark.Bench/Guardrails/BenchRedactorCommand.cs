using System.CommandLine;
using System.Diagnostics;
using System.Text;
using Bulwark.Server.Guardrails.Output;

namespace Bulwark.Bench.Guardrails;

/// <summary>
/// <c>bench/run redactor</c>: the latency the streaming secret redactor adds per streamed
/// token. A deterministic text (prose and code with a credential every few hundred characters)
/// is pushed in token-sized pieces; the time of each push is recorded and the percentiles
/// printed, with the one-shot time of the same text for comparison.
/// </summary>
internal static class BenchRedactorCommand
{
    public static Command Create()
    {
        var tokens = new Option<int>("--tokens") { Description = "Tokens (pieces of about 4 characters) to stream.", DefaultValueFactory = _ => 200_000 };
        var rounds = new Option<int>("--rounds") { Description = "Measured rounds after one warm-up round.", DefaultValueFactory = _ => 5 };
        var command = new Command("redactor", "Measure the latency the output guard's streaming redactor adds per token (p50/p99).") { tokens, rounds };
        command.SetAction(r =>
        {
            var n = r.GetValue(tokens);
            var k = r.GetValue(rounds);
            if (n is < 1000 or > 10_000_000) { Console.Error.WriteLine($"error: --tokens must be between 1000 and 10000000; got {n}"); return 1; }
            if (k is < 1 or > 100) { Console.Error.WriteLine($"error: --rounds must be between 1 and 100; got {k}"); return 1; }
            var pieces = Pieces(n);
            var samples = new List<long>(n * k);
            var output = new StringBuilder();
            long redactions = 0;
            for (var round = 0; round <= k; round++)
            {
                var redactor = new StreamingRedactor();
                foreach (var piece in pieces)
                {
                    output.Clear();
                    var start = Stopwatch.GetTimestamp();
                    redactor.Push(piece, output);
                    var ticks = Stopwatch.GetTimestamp() - start;
                    if (round > 0) samples.Add(ticks);
                }
                redactor.Flush(output);
                if (round == 0) redactions = redactor.Hits.Count;
            }
            samples.Sort();
            double Ns(double q) => samples[(int)Math.Min(samples.Count - 1, q * samples.Count)] * 1e9 / Stopwatch.Frequency;
            var whole = string.Concat(pieces);
            var oneShot = Stopwatch.StartNew();
            StreamingRedactor.Redact(whole);
            oneShot.Stop();
            Console.WriteLine($"{n} tokens x {k} rounds, {whole.Length} chars, {redactions} secrets redacted per round");
            Console.WriteLine($"per token: p50 {Ns(0.50):F0} ns, p99 {Ns(0.99):F0} ns, p99.9 {Ns(0.999):F0} ns, max {Ns(1):F0} ns");
            Console.WriteLine($"one-shot over the whole text: {oneShot.Elapsed.TotalMilliseconds:F1} ms ({oneShot.Elapsed.TotalNanoseconds / n:F0} ns per token)");
            return 0;
        });
        return command;
    }

    /// <summary>Prose and code in ~4-character pieces, with a credential (fake, fixed) every ~600 characters.</summary>
    private static List<string> Pieces(int count)
    {
        string[] words = ["the", "model", "returns", "a", "token", "password", "secret", "config", "value", "and", "then", "skips", "sk-", "eyJ", "key", "=", "\n", "AKIA", "hf_", "://"];
        string[] secrets =
        [
            "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5", "AKIAQWERTYUIOPASDFGH", "password = \"Tr0ub4dor&3x\"",
            "postgres://app:S3cr3t-Pa55@db:5432/app", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
        ];
        var text = new StringBuilder();
        var state = 12345u;
        while (text.Length < count * 4)
        {
            state = state * 1664525 + 1013904223;
            text.Append(words[(state >> 8) % (uint)words.Length]).Append(' ');
            if ((state >> 20) % 150 == 0) text.Append(secrets[(state >> 12) % (uint)secrets.Length]).Append(' ');
        }
        var pieces = new List<string>(count);
        for (var i = 0; i < count; i++) pieces.Add(text.ToString(i * 4, 4));
        return pieces;
    }
}
