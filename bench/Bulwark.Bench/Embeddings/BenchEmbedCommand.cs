using System.CommandLine;
using System.Diagnostics;
using Bulwark.Engine.Model.Config;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Embeddings;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Engine.Synthesis;

namespace Bulwark.Bench.Embeddings;

/// <summary>
/// <c>bench/run embed</c>: embeddings per second through the engine for batches of inputs (a synthetic
/// random-weight embedding model, or a given GGUF), and what a batch of embeddings does to a stream that
/// is decoding meanwhile (its inter-token latency alone and during the batch). Not a timed test.
/// </summary>
internal static class BenchEmbedCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "An embedding GGUF or model folder; default: a synthetic qwen3 model with last-token pooling." };
        var batches = new Option<string>("--batch") { Description = "Inputs per batch, comma-separated.", DefaultValueFactory = _ => "1,16,64" };
        var tokens = new Option<int>("--tokens") { Description = "Tokens per input.", DefaultValueFactory = _ => 32 };
        var dim = new Option<int>("--dim") { Description = "Hidden size of the synthetic model.", DefaultValueFactory = _ => 256 };
        var layers = new Option<int>("--layers") { Description = "Layers of the synthetic model.", DefaultValueFactory = _ => 4 };
        var command = new Command("embed", "Measure embeddings/s for batches of inputs, and a decoding stream's inter-token latency while a batch embeds.")
        {
            model, batches, tokens, dim, layers,
        };
        command.SetAction(async (r, ct) =>
        {
            var path = r.GetValue(model);
            if (path is null)
            {
                path = Path.Combine(Path.GetTempPath(), $"bulwark-bench-embed-{r.GetValue(dim)}x{r.GetValue(layers)}.gguf");
                SyntheticModel.WriteGguf(new SyntheticModelSpec
                {
                    Architecture = "qwen3", Pooling = PoolingType.Last, Dim = r.GetValue(dim), Layers = r.GetValue(layers), Heads = 8, KvHeads = 4,
                    FeedForward = r.GetValue(dim) * 3, Vocab = 4096, Context = 2048, Seed = 1,
                }, path);
            }
            using var loaded = EngineFactory.Load(path);
            var pooling = loaded.Config.Pooling == PoolingType.None ? PoolingType.Mean : loaded.Config.Pooling;
            var length = r.GetValue(tokens);
            var random = new Random(1);
            int[] Input() => Enumerable.Range(0, length).Select(_ => random.Next(loaded.Engine.VocabSize)).ToArray();
            Console.WriteLine($"model {Path.GetFileName(path)}: dim {loaded.Config.EmbeddingLength}, {loaded.Config.LayerCount} layers, {pooling} pooling, {length} tokens per input, {Environment.ProcessorCount} cores");

            var largest = 1;
            foreach (var batch in r.GetValue(batches)!.Split(',').Select(int.Parse))
            {
                largest = Math.Max(largest, batch);
                await EmbedAsync(loaded.Engine, Enumerable.Range(0, batch).Select(_ => Input()).ToArray(), pooling); // warm-up
                var inputs = Enumerable.Range(0, batch).Select(_ => Input()).ToArray();
                var clock = Stopwatch.StartNew();
                await EmbedAsync(loaded.Engine, inputs, pooling);
                var seconds = clock.Elapsed.TotalSeconds;
                Console.WriteLine($"batch {batch,4}: {batch / seconds,8:F1} embeddings/s, {batch * length / seconds,9:F0} tokens/s, {seconds * 1000,8:F1} ms");
            }

            var alone = await DecodeGapsAsync(loaded.Engine, Input(), null);
            var flood = Enumerable.Range(0, largest).Select(_ => Input()).ToArray();
            var during = await DecodeGapsAsync(loaded.Engine, Input(), () => EmbedAsync(loaded.Engine, flood, pooling));
            Console.WriteLine($"decoding stream, inter-token latency p50/max: alone {Percentile(alone, 0.5):F1}/{alone.Max():F1} ms; while {largest} inputs embed {Percentile(during, 0.5):F1}/{during.Max():F1} ms");
            return 0;
        });
        return command;
    }

    private static Task<float[][]> EmbedAsync(LlmEngine engine, int[][] inputs, PoolingType pooling) =>
        Task.WhenAll(inputs.Select(t => engine.EmbedAsync(new EmbeddingRequest { Tokens = t, Pooling = pooling })));

    /// <summary>Milliseconds between a 48-token greedy stream's tokens; <paramref name="meanwhile"/> starts after its first token.</summary>
    private static async Task<List<double>> DecodeGapsAsync(LlmEngine engine, int[] prompt, Func<Task>? meanwhile)
    {
        var gaps = new List<double>();
        Task? other = null;
        var last = Stopwatch.GetTimestamp();
        var request = new EngineRequest { PromptTokens = prompt, Sampling = new SamplingParams { Temperature = 0, MaxTokens = 48, IgnoreEos = true } };
        await foreach (var _ in engine.GenerateAsync(request))
        {
            var now = Stopwatch.GetTimestamp();
            if (other is null)
                other = meanwhile?.Invoke() ?? Task.CompletedTask;
            else
                gaps.Add(Stopwatch.GetElapsedTime(last, now).TotalMilliseconds);
            last = now;
        }
        await other!;
        return gaps;
    }

    private static double Percentile(List<double> values, double p)
    {
        var sorted = values.Order().ToArray();
        return sorted[(int)Math.Min(sorted.Length - 1, Math.Floor(p * sorted.Length))];
    }
}
