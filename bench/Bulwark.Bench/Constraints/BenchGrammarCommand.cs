using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Constraints;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Engine.Synthesis;
using Bulwark.Engine.Tokenizers.Loading;

namespace Bulwark.Bench.Constraints;

/// <summary>
/// <c>bench/run grammar</c>: what constrained decoding costs. (1) Token masks over GPT-2's 50k
/// vocabulary and a 128k one (GPT-2's tokens plus 78k more byte strings built from them, Llama 3's
/// size): a cold trie walk, the naive per-token check it replaces, and the steady per-token cost of
/// a random walk through a JSON schema (mask lookups or walks plus state updates). (2) Decode
/// throughput of a synthetic random-weight model with and without that schema at 1 and 32 sequences.
/// </summary>
internal static class BenchGrammarCommand
{
    /// <summary>A typical schema: strings without length bounds, so the state inside a string repeats and its mask is cached.</summary>
    private const string Schema = """
        {"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer","minimum":0,"maximum":150},
         "tags":{"type":"array","items":{"type":"string"},"maxItems":50},"ok":{"type":"boolean"}},"required":["name","age","tags","ok"]}
        """;

    /// <summary>The same with maxLength on its strings: every position in a bounded string is a state of its own, the worst case for the cache.</summary>
    private const string BoundedSchema = """
        {"type":"object","properties":{"name":{"type":"string","maxLength":400},"age":{"type":"integer","minimum":0,"maximum":150},
         "tags":{"type":"array","items":{"type":"string","maxLength":40},"maxItems":50},"ok":{"type":"boolean"}},"required":["name","age","tags","ok"]}
        """;

    public static Command Create()
    {
        var tokens = new Option<int>("--tokens") { Description = "Tokens of the random walk for the per-token mask cost.", DefaultValueFactory = _ => 2000 };
        var genTokens = new Option<int>("--gen-tokens") { Description = "Tokens generated per sequence in the throughput runs.", DefaultValueFactory = _ => 64 };
        var dim = new Option<int>("--dim") { Description = "Hidden size of the synthetic model of the throughput runs.", DefaultValueFactory = _ => 256 };
        var layers = new Option<int>("--layers") { Description = "Layers of the synthetic model.", DefaultValueFactory = _ => 4 };
        var skipDecode = new Option<bool>("--masks-only") { Description = "Measure the masks only (no model)." };
        var command = new Command("grammar", "Measure constrained decoding: token-mask cost per token (50k and 128k vocabularies) and decode throughput with and without a JSON schema.")
        {
            tokens, genTokens, dim, layers, skipDecode,
        };
        command.SetAction(async (r, ct) =>
        {
            var gpt2 = SyntheticVocabulary.Create(SyntheticVocabulary.MaximumSize);
            var tokenizer = TokenizerFactory.Create(gpt2);
            var vocab50 = TokenVocabulary.From(tokenizer, tokenizer.VocabSize);
            var vocab128 = Widened(vocab50, 128_256);
            foreach (var (name, vocabulary) in new[] { ("50k (GPT-2)", vocab50), ("128k (Llama 3 size)", vocab128) })
                foreach (var (schemaName, schema) in new[] { ("typical schema", Schema), ("bounded strings", BoundedSchema) })
                    Masks(name, vocabulary, schemaName, schema, r.GetValue(tokens));
            if (r.GetValue(skipDecode)) return 0;
            await DecodeAsync(r.GetValue(genTokens), r.GetValue(dim), r.GetValue(layers));
            return 0;
        });
        return command;
    }

    /// <summary>GPT-2's byte strings, then pairs of them up to <paramref name="size"/> tokens (deterministic).</summary>
    private static TokenVocabulary Widened(TokenVocabulary baseVocabulary, int size)
    {
        var bytes = new byte[]?[size];
        var known = new HashSet<string>();
        for (var id = 0; id < baseVocabulary.Size; id++)
        {
            bytes[id] = baseVocabulary.BytesOf(id);
            if (bytes[id] is { } b) known.Add(Convert.ToHexString(b));
        }
        var random = new Random(128);
        for (var id = baseVocabulary.Size; id < size;)
        {
            var a = baseVocabulary.BytesOf(random.Next(256, baseVocabulary.Size - 3));
            var c = baseVocabulary.BytesOf(random.Next(256, 20_000));
            if (a is null || c is null) continue;
            var joined = (byte[])[.. a, .. c];
            if (joined.Length > 16 || !known.Add(Convert.ToHexString(joined))) continue;
            bytes[id++] = joined;
        }
        return new TokenVocabulary(bytes);
    }

    private static void Masks(string name, TokenVocabulary vocabulary, string schemaName, string schema, int tokens)
    {
        using var doc = JsonDocument.Parse(schema);
        var grammar = GrammarCompiler.JsonSchema(doc.RootElement);
        Console.WriteLine($"vocabulary {name}: {vocabulary.Size} tokens, {vocabulary.TrieNodes} trie nodes; {schemaName}");

        // Cold: a fresh constraint, the first mask inside a string (nearly every token allowed: the worst case of the walk).
        var cold = new TokenConstraint(grammar, vocabulary);
        var inString = cold.Matcher.Step(cold.Start, "{\"name\":\"a"u8);
        var mask = new ulong[vocabulary.MaskWords];
        var watch = Stopwatch.StartNew();
        var allowed = cold.Fill(inString, mask);
        var coldMs = watch.Elapsed.TotalMilliseconds;
        watch.Restart();
        var warm = cold.Fill(inString, mask);
        var warmMs = watch.Elapsed.TotalMilliseconds;
        watch.Restart();
        cold.FillNaive(inString, mask);
        var naiveMs = watch.Elapsed.TotalMilliseconds;
        Console.WriteLine($"  mask inside a string ({allowed} allowed): trie walk cold {coldMs:F1} ms, warm {warmMs:F1} ms; naive per-token check {naiveMs:F1} ms");

        // Steady: a random walk through the schema, as a sampler would take it: mask (cached per state) + state update per token.
        var constraint = new TokenConstraint(grammar, vocabulary);
        var random = new Random(9);
        var state = constraint.Start;
        var samples = new List<double>(tokens);
        var produced = 0;
        while (produced < tokens)
        {
            var start = Stopwatch.GetTimestamp();
            var m = constraint.MaskOf(state, first: false, out var count);
            int token = -1;
            if (count > 0)
            {
                // Prefer short structural progress sometimes, so the walk leaves strings and visits the whole schema.
                var pick = random.Next(count);
                for (var w = 0; w < m.Length && token < 0; w++)
                {
                    var bits = m[w];
                    var n = System.Numerics.BitOperations.PopCount(bits);
                    if (pick >= n) { pick -= n; continue; }
                    for (var b = 0; b < 64; b++)
                        if ((bits >> b & 1) != 0 && pick-- == 0) { token = w * 64 + b; break; }
                }
                state = constraint.Advance(state, token, first: false);
            }
            samples.Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds);
            produced++;
            if (count == 0 || state.IsFinal) state = constraint.Start;
        }
        samples.Sort();
        Console.WriteLine($"  per token over a {tokens}-token random walk: mean {samples.Average():F1} µs, p50 {samples[samples.Count / 2]:F1} µs, p99 {samples[(int)(samples.Count * 0.99)]:F1} µs; {constraint.MaskWalks} trie walks (the rest were cached masks)");
    }

    private static async Task DecodeAsync(int genTokens, int dim, int layers)
    {
        var spec = new SyntheticModelSpec { Vocab = SyntheticVocabulary.MaximumSize, Dim = dim, Heads = 4, KvHeads = 2, FeedForward = dim * 2, Layers = layers, Context = 512, Seed = 3 };
        var folder = Path.Combine(Path.GetTempPath(), $"bulwark-bench-grammar-{Environment.ProcessId}");
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, "model.gguf");
        try
        {
            SyntheticModel.WriteGguf(spec, path);
            using var loaded = EngineFactory.Load(path, new EngineOptions { KvCacheBlocks = 32 * 8 + 16, BlockSize = 16 });
            var vocabulary = TokenVocabulary.From(loaded.Tokenizer, loaded.Engine.VocabSize);
            using var doc = JsonDocument.Parse(Schema);
            var grammar = GrammarCompiler.JsonSchema(doc.RootElement);
            Console.WriteLine($"decode: synthetic model dim {dim}, {layers} layers, vocabulary {spec.Vocab}, {genTokens} tokens per sequence, temperature 1");
            foreach (var sequences in new[] { 1, 32 })
            {
                // Warm-up, then: unconstrained; the schema seen for the first time (a fresh constraint, every mask a walk);
                // the schema repeated (the server shares one constraint per schema, so its masks are cached). Best of 2 each.
                await RunAsync(loaded, sequences, genTokens, _ => null);
                var shared = new TokenConstraint(grammar, vocabulary);
                double plain = 0, fresh = 0, repeated = 0;
                for (var round = 0; round < 2; round++)
                {
                    plain = Math.Max(plain, await RunAsync(loaded, sequences, genTokens, _ => null));
                    var first = new TokenConstraint(grammar, vocabulary);
                    fresh = Math.Max(fresh, await RunAsync(loaded, sequences, genTokens, _ => first));
                    repeated = Math.Max(repeated, await RunAsync(loaded, sequences, genTokens, _ => shared));
                }
                Console.WriteLine($"  {sequences,2} sequences: unconstrained {plain:F0} tok/s; schema first seen {fresh:F0} tok/s ({100 * fresh / plain:F1} %); schema repeated {repeated:F0} tok/s ({100 * repeated / plain:F1} %)");
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>Aggregate decode throughput (completion tokens per second) of <paramref name="sequences"/> concurrent requests.</summary>
    private static async Task<double> RunAsync(LoadedEngine loaded, int sequences, int genTokens, Func<int, TokenConstraint?> constraintOf)
    {
        var prompt = loaded.Tokenizer.Encode("Reply in JSON: ", addSpecial: false);
        var watch = Stopwatch.StartNew();
        var tasks = Enumerable.Range(0, sequences).Select(async i =>
        {
            var request = new EngineRequest
            {
                PromptTokens = prompt,
                Sampling = new SamplingParams { Temperature = 1, Seed = i, MaxTokens = genTokens, IgnoreEos = constraintOf(i) is null },
                Constraint = constraintOf(i),
            };
            var count = 0;
            await foreach (var e in loaded.Engine.GenerateAsync(request)) count++;
            return count;
        }).ToList();
        var total = (await Task.WhenAll(tasks)).Sum();
        return total / watch.Elapsed.TotalSeconds;
    }
}
