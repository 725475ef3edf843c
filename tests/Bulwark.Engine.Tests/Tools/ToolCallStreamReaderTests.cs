using System.Text;
using Bulwark.Engine.Tools;
using CsCheck;

namespace Bulwark.Engine.Tests.Tools;

public class ToolCallStreamReaderTests
{
    private static readonly HashSet<string> Names = ["get_weather", "get_time"];

    private static ToolCallStreamReader Reader(ToolCallFormat format)
    {
        var n = 0;
        return new ToolCallStreamReader(format, Names, () => $"call_{n++}");
    }

    private const string Hermes =
        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Par\\\"is {x}\", \"days\": [1, 2]}}\n</tool_call>\n" +
        "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";

    private const string Llama = "{\"name\": \"get_weather\", \"parameters\": {\"location\": \"a; b\"}}; {\"name\": \"get_time\", \"parameters\": {\"zone\": \"UTC\"}}";

    private const string Mistral = "[TOOL_CALLS][{\"name\": \"get_time\", \"arguments\": {\"zone\": \"]}\"}}, {\"name\": \"get_weather\", \"arguments\": {\"n\": -1.5e3}}]";

    [Fact]
    public void TheOpeningPieceComesAsSoonAsTheNameEndsAndEachPushOfTheArgumentsIsAFragment()
    {
        var reader = Reader(ToolCallFormat.Hermes);
        Assert.Equal(ToolCallPieces.Empty, reader.Push("<tool_call>\n{\"name\": \"get_wea"));
        var opened = reader.Push("ther\", \"arguments\": ");
        Assert.Equal("", opened.Content);
        Assert.Equal([new ToolCallPiece(0, "call_0", "get_weather", "")], opened.Pieces);
        Assert.Equal([new ToolCallPiece(0, null, null, "{\"location\"")], reader.Push("{\"location\"").Pieces);
        Assert.Equal([new ToolCallPiece(0, null, null, ": \"Paris\"}")], reader.Push(": \"Paris\"}}\n</tool_").Pieces);
        Assert.Equal(ToolCallPieces.Empty, reader.Push("call>"));
        Assert.Equal(ToolCallPieces.Empty, reader.Finish());
        Assert.Equal(1, reader.CallCount);
    }

    [Theory]
    [InlineData(ToolCallFormat.Hermes, Hermes)]
    [InlineData(ToolCallFormat.Llama3, Llama)]
    [InlineData(ToolCallFormat.Mistral, Mistral)]
    public void HoweverTheTextIsSplitTheCallsAreTheOnesTheWholeCallParserReads(ToolCallFormat format, string text)
    {
        var parser = new ToolCallParser(format, Names);
        var expected = parser.Push(text).Calls.Concat(parser.Finish().Calls).Select(c => (c.Name, c.Arguments)).ToList();
        Assert.Equal(2, expected.Count);
        Gen.Int[1, 12].Array[1, 40].Sample(sizes =>
        {
            var chunks = new List<string>();
            var at = 0;
            for (var i = 0; at < text.Length; i++)
            {
                var n = Math.Min(text.Length - at, sizes[i % sizes.Length]);
                chunks.Add(text.Substring(at, n));
                at += n;
            }
            var (content, calls) = Run(format, chunks);
            Assert.Equal("", content);
            Assert.Equal(expected, calls);
        }, iter: 300);
    }

    [Fact]
    public void TextThatLeavesTheLayoutBeforeACallIsContentExactlyAsWritten()
    {
        AssertText("Sure! <tool_call>", Run(ToolCallFormat.Hermes, ["Sure! ", "<tool_call>"]));
        const string unknown = "<tool_call>\n{\"name\": \"rm_rf\", \"arguments\": {}}\n</tool_call>";
        AssertText(unknown, Run(ToolCallFormat.Hermes, [unknown[..20], unknown[20..]]));
        AssertText("[TOOL_CALLS][{\"name\": \"get_ti", Run(ToolCallFormat.Mistral, ["[TOOL_CALLS][{\"name\": \"get_ti"]));

        static void AssertText(string expected, (string Content, List<(string Name, string Arguments)> Calls) read)
        {
            Assert.Equal(expected, read.Content);
            Assert.Empty(read.Calls);
        }
    }

    [Fact]
    public void AnOutputCutInsideTheArgumentsKeepsWhatWasSentAndTheFragmentsArePrefixOfTheArguments()
    {
        var (content, calls) = Run(ToolCallFormat.Llama3, ["{\"name\": \"get_time\", \"parameters\": {\"zo", "ne\": \"Eur"]);
        Assert.Equal("", content);
        Assert.Equal([("get_time", "{\"zone\": \"Eur")], calls);
        // Cut after the call, inside the separator's marker: the held text is released at the end, not lost.
        (content, calls) = Run(ToolCallFormat.Hermes, ["<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>\n<tool"]);
        Assert.Equal("\n<tool", content);
        Assert.Equal([("get_time", "{}")], calls);
    }

    [Fact]
    public void TextAfterTheLastCallIsContent()
    {
        var (content, calls) = Run(ToolCallFormat.Mistral, ["[TOOL_CALLS][{\"name\": \"get_time\", \"arguments\": {}}]", " done"]);
        Assert.Equal(" done", content);
        Assert.Single(calls);
    }

    private static (string Content, List<(string Name, string Arguments)> Calls) Run(ToolCallFormat format, IEnumerable<string> chunks)
    {
        var reader = Reader(format);
        var content = new StringBuilder();
        var calls = new List<(string Name, StringBuilder Arguments)>();
        foreach (var chunk in chunks) Take(reader.Push(chunk));
        Take(reader.Finish());
        Assert.Equal(content.ToString(), ToolCallParserTests.ContentOf(string.Concat(chunks), reader.Runs));
        return (content.ToString(), [.. calls.Select(c => (c.Name, c.Arguments.ToString()))]);

        void Take(ToolCallPieces output)
        {
            content.Append(output.Content);
            foreach (var piece in output.Pieces)
                if (piece.Id is not null) calls.Add((piece.Name!, new StringBuilder()));
                else calls[piece.Index].Arguments.Append(piece.Arguments);
        }
    }
}
