using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Constraints;
using Bulwark.Engine.Serving.Sampling;
using Bulwark.Engine.Synthesis;
using Bulwark.Engine.Tests.Serving;
using Json.Schema;
using static Bulwark.Engine.Tests.Serving.EngineHarness;

namespace Bulwark.Engine.Tests.Serving.Constraints;

/// <summary>
/// Random schemas on a random-weight synthetic model at temperature 1: every choice that ends with
/// "stop" is valid JSON that an independent validator (JsonSchema.Net) accepts, and every "length"
/// choice is a prefix of a valid text.
/// </summary>
public class ConstrainedGenerationTests
{
    private static readonly Lazy<string> ModelPath = new(() => SyntheticGguf.Write(new SyntheticModelSpec { Vocab = 1024, Seed = 7, Context = 512 }));

    /// <summary>A random schema within the supported subset.</summary>
    internal static JsonObject RandomSchema(Random r, int depth = 0)
    {
        var kind = r.Next(depth >= 2 ? 6 : 9);
        switch (kind)
        {
            case 0: return new JsonObject { ["type"] = "string", ["maxLength"] = r.Next(0, 8), ["minLength"] = 0 };
            case 1:
                var lo = r.Next(-50, 50);
                return new JsonObject { ["type"] = "integer", ["minimum"] = lo, ["maximum"] = lo + r.Next(0, 300) };
            case 2: return new JsonObject { ["type"] = "boolean" };
            case 3: return new JsonObject { ["enum"] = new JsonArray("red", "grün", 3, null) };
            case 4: return new JsonObject { ["type"] = new JsonArray("number", "null") };
            case 5: return new JsonObject { ["type"] = "string", ["pattern"] = "^[a-f]{1,4}-?\\d$" };
            case 6:
            {
                var properties = new JsonObject();
                var required = new JsonArray();
                var count = r.Next(1, 4);
                for (var i = 0; i < count; i++)
                {
                    properties["p" + i] = RandomSchema(r, depth + 1);
                    if (r.Next(2) == 0) required.Add("p" + i);
                }
                return new JsonObject { ["type"] = "object", ["properties"] = properties, ["required"] = required, ["additionalProperties"] = false };
            }
            case 7:
                return new JsonObject { ["type"] = "array", ["items"] = RandomSchema(r, depth + 1), ["minItems"] = r.Next(0, 2), ["maxItems"] = r.Next(2, 4) };
            default:
                return new JsonObject { ["anyOf"] = new JsonArray(new JsonObject { ["type"] = "integer", ["minimum"] = 0, ["maximum"] = 9 }, RandomSchema(r, depth + 1)) };
        }
    }

    /// <summary>
    /// The same 1024 rows read as a byte-fallback vocabulary: ids 0–255 the single bytes, the rest random
    /// 1–4 byte strings that often split UTF-8 characters (continuation bytes first, lead bytes last), and
    /// the model's three specials as control tokens.
    /// </summary>
    private static TokenVocabulary ByteFallback(int size)
    {
        var random = new Random(77);
        var alphabet = new byte[] { (byte)'{', (byte)'}', (byte)'"', (byte)':', (byte)',', (byte)'[', (byte)']', (byte)' ', (byte)'1', (byte)'-', (byte)'a', (byte)'e', 0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F };
        var pieces = new byte[]?[size];
        for (var id = 0; id < size - 3; id++)
        {
            if (id < 256) pieces[id] = [(byte)id];
            else
            {
                var piece = new byte[random.Next(1, 5)];
                for (var j = 0; j < piece.Length; j++) piece[j] = alphabet[random.Next(alphabet.Length)];
                pieces[id] = piece;
            }
        }
        return new TokenVocabulary(pieces);
    }

    /// <summary>Three choices sampled at temperature 1 under <paramref name="grammar"/>: each one's finish reason and output bytes (the stop token left out).</summary>
    internal static async Task<List<(FinishReason? Finish, byte[] Bytes)>> SampleAsync(LlmEngine engine, int[] prompt, Grammar grammar, TokenVocabulary vocabulary, long seed, int maxTokens)
    {
        var request = new EngineRequest
        {
            PromptTokens = prompt,
            Sampling = new SamplingParams { Temperature = 1f, Seed = seed, MaxTokens = maxTokens, N = 3 },
            Constraint = new TokenConstraint(grammar, vocabulary),
        };
        var events = await CollectAsync(engine, request);
        return [.. Enumerable.Range(0, 3).Select(c =>
        {
            var mine = events.Where(e => e.Index == c).ToList();
            return (mine[^1].FinishReason, mine.Where(e => !e.IsStopToken).SelectMany(e => vocabulary.BytesOf(e.TokenId)!).ToArray());
        })];
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task EveryStoppedCompletionValidatesAndEveryCutOneIsAPrefix(bool byteFallback)
    {
        using var loaded = EngineFactory.Load(ModelPath.Value, new EngineOptions { KvCacheBlocks = 256, BlockSize = 16 });
        var vocabulary = byteFallback ? ByteFallback(loaded.Engine.VocabSize) : TokenVocabulary.From(loaded.Tokenizer, loaded.Engine.VocabSize);
        var random = new Random(byteFallback ? 99 : 2024);
        int stopped = 0, cut = 0;
        for (var trial = 0; trial < 16; trial++)
        {
            var schemaNode = RandomSchema(random);
            if (trial % 4 == 0) schemaNode = new JsonObject { ["type"] = "object", ["properties"] = new JsonObject { ["v"] = schemaNode }, ["required"] = new JsonArray("v") };
            var schemaText = schemaNode.ToJsonString();
            using var doc = JsonDocument.Parse(schemaText);
            var grammar = GrammarCompiler.JsonSchema(doc.RootElement);
            var validator = JsonSchema.FromText(schemaText);
            var prompt = loaded.Tokenizer.Encode("Answer in JSON: ", addSpecial: false);
            foreach (var (finish, bytes) in await SampleAsync(loaded.Engine, prompt, grammar, vocabulary, random.NextInt64(), maxTokens: 96))
            {
                if (finish == FinishReason.Stop)
                {
                    stopped++;
                    using var output = JsonDocument.Parse(bytes);
                    var result = validator.Evaluate(output.RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List });
                    Assert.True(result.IsValid, $"{schemaText}\n{Encoding.UTF8.GetString(bytes)}");
                }
                else
                {
                    Assert.Equal(FinishReason.Length, finish);
                    cut++;
                    Assert.True(grammar.IsPrefix(bytes), $"{schemaText}\n{Encoding.UTF8.GetString(bytes)}");
                }
            }
        }
        Assert.True(stopped >= 10, $"only {stopped} of {stopped + cut} completions finished; the test proves little");
    }

    [Fact]
    public async Task GreedyRegexAndChoiceOutputsMatchAndAnUnconstrainedNeighbourIsUnchanged()
    {
        var options = new EngineOptions { KvCacheBlocks = 256, BlockSize = 16 };
        using var loaded = EngineFactory.Load(ModelPath.Value, options);
        var vocabulary = TokenVocabulary.From(loaded.Tokenizer, loaded.Engine.VocabSize);
        var prompt = loaded.Tokenizer.Encode("Pick one: ", addSpecial: false);
        var plain = new EngineRequest { PromptTokens = prompt, Sampling = new SamplingParams { Temperature = 0, MaxTokens = 24, IgnoreEos = true } };
        var alone = Ids(await CollectAsync(loaded.Engine, plain));

        const string pattern = "[A-Z][a-z]{2,6} (19|20)\\d\\d";
        var regex = CollectAsync(loaded.Engine, plain with
        {
            Sampling = new SamplingParams { Temperature = 0, MaxTokens = 40 },
            Constraint = new TokenConstraint(GrammarCompiler.Regex(pattern), vocabulary),
        });
        var choice = CollectAsync(loaded.Engine, plain with
        {
            Sampling = new SamplingParams { Temperature = 1, Seed = 4, MaxTokens = 40, N = 4 },
            Constraint = new TokenConstraint(GrammarCompiler.Choice(["alpha", "beta", "gamma delta"]), vocabulary),
        });
        var neighbour = CollectAsync(loaded.Engine, plain);
        await Task.WhenAll(regex, choice, neighbour);
        var regexEvents = await regex;
        var choiceEvents = await choice;

        Assert.Equal(alone, Ids(await neighbour));
        var regexText = loaded.Tokenizer.Decode(Ids(regexEvents.Where(e => !e.IsStopToken)));
        Assert.Equal(FinishReason.Stop, regexEvents[^1].FinishReason);
        Assert.Matches("^(?:" + pattern + ")\\z", regexText);
        for (var c = 0; c < 4; c++)
        {
            var text = loaded.Tokenizer.Decode(Ids(choiceEvents.Where(e => !e.IsStopToken), c));
            Assert.Contains(text, new[] { "alpha", "beta", "gamma delta" });
        }
    }

    [Fact]
    public async Task PreemptedConstrainedSequencesStillFinishValid()
    {
        // A cache too small for every sequence at once: some are preempted and recomputed mid-value.
        using var loaded = EngineFactory.Load(ModelPath.Value, new EngineOptions { KvCacheBlocks = 14, BlockSize = 8 });
        var vocabulary = TokenVocabulary.From(loaded.Tokenizer, loaded.Engine.VocabSize);
        const string schema = """{"type":"object","properties":{"a":{"type":"string","maxLength":12},"b":{"type":"array","items":{"type":"integer","minimum":0,"maximum":99},"maxItems":6}},"required":["a","b"]}""";
        using var doc = JsonDocument.Parse(schema);
        var constraint = new TokenConstraint(GrammarCompiler.JsonSchema(doc.RootElement), vocabulary);
        var requests = Enumerable.Range(0, 6).Select(i => CollectAsync(loaded.Engine, new EngineRequest
        {
            PromptTokens = loaded.Tokenizer.Encode($"Request {i}: ", addSpecial: false),
            Sampling = new SamplingParams { Temperature = 1, Seed = i, MaxTokens = 80 },
            Constraint = constraint,
        })).ToList();
        var results = await Task.WhenAll(requests);
        Assert.True(loaded.Engine.Counters.Preemptions > 0, "no preemption happened; the test proves nothing");
        var validator = JsonSchema.FromText(schema);
        foreach (var r in results)
        {
            var bytes = r.Where(e => !e.IsStopToken).SelectMany(e => vocabulary.BytesOf(e.TokenId)!).ToArray();
            if (r[^1].FinishReason == FinishReason.Stop)
            {
                using var output = JsonDocument.Parse(bytes);
                Assert.True(validator.Evaluate(output.RootElement).IsValid, Encoding.UTF8.GetString(bytes));
            }
            else Assert.True(constraint.Grammar.IsPrefix(bytes));
        }
    }
}
