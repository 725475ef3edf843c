using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Bulwark.Engine.Serving;
using Bulwark.Engine.Serving.Constraints;
using Bulwark.Engine.Synthesis;
using Bulwark.Engine.Tests.Serving;
using Bulwark.Engine.Tests.Serving.Constraints;
using Bulwark.Engine.Tools;
using Json.Schema;

namespace Bulwark.Engine.Tests.Tools;

/// <summary>
/// <c>tool_choice: required</c> and a named function on a random-weight synthetic model at temperature 1: for random
/// functions (random parameter schemas), every completion that stops is read back by the format's parser as calls of
/// declared functions (the named one when named; one call unless parallel) whose arguments an independent validator
/// (JsonSchema.Net) accepts, with no text besides; every completion cut by max_tokens is a prefix of a valid one.
/// </summary>
public class ToolCallGenerationTests
{
    private static readonly Lazy<string> ModelPath = new(() => SyntheticGguf.Write(new SyntheticModelSpec { Vocab = 1024, Seed = 11, Context = 512 }));

    [Theory]
    [InlineData(ToolCallFormat.Hermes)]
    [InlineData(ToolCallFormat.Llama3)]
    [InlineData(ToolCallFormat.Mistral)]
    public async Task EveryStoppedRequiredCallParsesAndItsArgumentsValidate(ToolCallFormat format)
    {
        using var loaded = EngineFactory.Load(ModelPath.Value, new EngineOptions { KvCacheBlocks = 256, BlockSize = 16 });
        var vocabulary = TokenVocabulary.From(loaded.Tokenizer, loaded.Engine.VocabSize);
        var random = new Random(31 + (int)format);
        int stopped = 0, cut = 0, calls = 0;
        for (var trial = 0; trial < 10; trial++)
        {
            var count = random.Next(1, 4);
            var schemas = new List<string>();
            var functions = new List<ToolFunction>();
            for (var i = 0; i < count; i++)
            {
                var schema = new JsonObject { ["type"] = "object", ["properties"] = new JsonObject { ["a"] = ConstrainedGenerationTests.RandomSchema(random, 1) } };
                if (random.Next(2) == 0) schema["required"] = new JsonArray("a");
                schemas.Add(schema.ToJsonString());
                functions.Add(new ToolFunction($"f{i}", i == 0 && random.Next(3) == 0 ? null : JsonDocument.Parse(schemas[i]).RootElement));
            }
            var named = trial % 3 == 2 ? functions[random.Next(count)].Name : null;
            var parallel = named is null && trial % 2 == 0;
            var allowed = named is null ? functions : functions.Where(f => f.Name == named).ToList();
            var grammar = ToolCallGrammar.Compile(format, allowed, parallel);
            var prompt = loaded.Tokenizer.Encode("Call a tool: ", addSpecial: false);
            foreach (var (finish, bytes) in await ConstrainedGenerationTests.SampleAsync(loaded.Engine, prompt, grammar, vocabulary, random.NextInt64(), maxTokens: 120))
            {
                var text = Encoding.UTF8.GetString(bytes);
                var streamed = Stream(format, functions, text, random, out var streamedContent, out var streamedAtEnd);
                if (finish != FinishReason.Stop)
                {
                    cut++;
                    Assert.True(grammar.IsPrefix(bytes), text);
                    // Cut inside the layout: nothing was read as content while it could still be a call.
                    Assert.Equal("", streamedContent);
                    continue;
                }
                stopped++;
                var parser = new ToolCallParser(format, functions.Select(f => f.Name).ToHashSet());
                var first = parser.Push(text);
                var rest = parser.Finish();
                var parsed = first.Calls.Concat(rest.Calls).ToList();
                Assert.Equal("", first.Content + rest.Content);
                Assert.NotEmpty(parsed);
                if (!parallel) Assert.Single(parsed);
                // The streaming reader, fed the same text in random pieces, sends the same calls: the fragments joined are the arguments.
                Assert.Equal(parsed.Select(c => (c.Name, c.Arguments)), streamed);
                Assert.Equal("", streamedContent + streamedAtEnd);
                foreach (var call in parsed)
                {
                    calls++;
                    if (named is not null) Assert.Equal(named, call.Name);
                    var index = functions.FindIndex(f => f.Name == call.Name);
                    using var arguments = JsonDocument.Parse(call.Arguments);
                    if (functions[index].Parameters is null) Assert.Equal("{}", call.Arguments);
                    else Assert.True(JsonSchema.FromText(schemas[index]).Evaluate(arguments.RootElement).IsValid, $"{schemas[index]}\n{text}");
                }
            }
        }
        Assert.True(stopped >= 10, $"only {stopped} of {stopped + cut} completions finished; the test proves little");
        Assert.True(calls >= stopped);
    }

    /// <summary>
    /// The calls <see cref="ToolCallStreamReader"/> streams from <paramref name="text"/> pushed in random pieces of 1 to 8
    /// characters (each call: its name and its argument fragments joined); <paramref name="content"/>: the content released
    /// before the end; <paramref name="atEnd"/>: held text released at the end (a cut output may end inside the layout).
    /// </summary>
    internal static List<(string Name, string Arguments)> Stream(ToolCallFormat format, IEnumerable<ToolFunction> functions, string text, Random random, out string content, out string atEnd)
    {
        var reader = new ToolCallStreamReader(format, functions.Select(f => f.Name).ToHashSet());
        var calls = new List<(string Name, StringBuilder Arguments)>();
        var shown = new StringBuilder();
        void Take(ToolCallPieces output)
        {
            foreach (var piece in output.Pieces)
            {
                if (piece.Id is not null)
                {
                    Assert.Equal(calls.Count, piece.Index);
                    Assert.Equal("", piece.Arguments);
                    calls.Add((piece.Name!, new StringBuilder()));
                }
                else
                {
                    Assert.Null(piece.Name);
                    calls[piece.Index].Arguments.Append(piece.Arguments);
                }
            }
        }
        for (var at = 0; at < text.Length;)
        {
            var n = Math.Min(text.Length - at, random.Next(1, 9));
            var output = reader.Push(text.Substring(at, n));
            shown.Append(output.Content);
            Take(output);
            at += n;
        }
        content = shown.ToString();
        var last = reader.Finish();
        atEnd = last.Content;
        Take(last);
        return [.. calls.Select(c => (c.Name, c.Arguments.ToString()))];
    }

    [Fact]
    public void TheGrammarAcceptsWhatTheTemplatesShowAndRefusesOtherNames()
    {
        using var doc = JsonDocument.Parse("""{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}""");
        var functions = new[] { new ToolFunction("get_weather", doc.RootElement), new ToolFunction("get_time", null) };
        var hermes = ToolCallGrammar.Compile(ToolCallFormat.Hermes, functions, parallel: true);
        Assert.True(hermes.Matches("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\"}}\n</tool_call>"u8));
        Assert.True(hermes.Matches("<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>"u8));
        Assert.False(hermes.Matches("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>"u8)); // location is required
        Assert.False(hermes.IsPrefix("<tool_call>\n{\"name\": \"rm\""u8));
        var single = ToolCallGrammar.Compile(ToolCallFormat.Hermes, functions, parallel: false);
        Assert.False(single.Matches("<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>"u8));
        var llama = ToolCallGrammar.Compile(ToolCallFormat.Llama3, functions, parallel: false);
        Assert.True(llama.Matches("{\"name\": \"get_weather\", \"parameters\": {\"location\": \"x\"}}"u8));
        var mistral = ToolCallGrammar.Compile(ToolCallFormat.Mistral, functions, parallel: true);
        Assert.True(mistral.Matches("[TOOL_CALLS][{\"name\": \"get_time\", \"arguments\": {}}, {\"name\": \"get_weather\", \"arguments\": {\"location\": \"x\"}}]"u8));
    }

    [Fact]
    public void AnUnenforceableParameterKeywordIsRefusedWithItsPath()
    {
        using var doc = JsonDocument.Parse("""{"type":"object","properties":{"tags":{"type":"array","uniqueItems":true}}}""");
        var e = Assert.Throws<ConstraintException>(() => ToolCallGrammar.Compile(ToolCallFormat.Hermes, [new ToolFunction("f", doc.RootElement)], false));
        Assert.Equal("tools[0].function.parameters.properties.tags.uniqueItems", e.Path);
    }
}
