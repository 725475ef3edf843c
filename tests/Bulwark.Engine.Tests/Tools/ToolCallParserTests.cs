using System.Text;
using Bulwark.Engine.Tools;
using CsCheck;

namespace Bulwark.Engine.Tests.Tools;

public class ToolCallParserTests
{
    private static readonly HashSet<string> Names = ["get_weather", "get_time"];

    private static ToolCallParser Parser(ToolCallFormat format)
    {
        var n = 0;
        return new ToolCallParser(format, Names, () => $"call_{n++}");
    }

    /// <summary>Pushes <paramref name="chunks"/> one by one, then finishes: all the content, all the calls.</summary>
    private static (string Content, List<ParsedToolCall> Calls, List<string> Released) Run(ToolCallFormat format, params string[] chunks)
    {
        var parser = Parser(format);
        var content = new StringBuilder();
        var calls = new List<ParsedToolCall>();
        var released = new List<string>();
        foreach (var chunk in chunks) Take(parser.Push(chunk));
        Take(parser.Finish());
        // The runs mark as content exactly the characters released as content, and cover the whole output.
        Assert.Equal(content.ToString(), ContentOf(string.Concat(chunks), parser.Runs));
        return (content.ToString(), calls, released);

        void Take(ToolCallOutput o)
        {
            content.Append(o.Content);
            released.Add(o.Content);
            calls.AddRange(o.Calls);
        }
    }

    /// <summary>The characters of <paramref name="text"/> that <paramref name="runs"/> mark as content; every character must be in a run.</summary>
    internal static string ContentOf(string text, ContentRuns runs)
    {
        var taken = new List<(bool Content, int Length)>();
        runs.TakeInto(taken);
        Assert.Equal(text.Length, taken.Sum(r => r.Length));
        var content = new StringBuilder();
        var at = 0;
        foreach (var (isContent, length) in taken)
        {
            if (isContent) content.Append(text, at, length);
            at += length;
        }
        return content.ToString();
    }

    [Fact]
    public void HermesCallAfterTextIsReadWithItsArgumentsAndTheTextStaysContent()
    {
        var (content, calls, _) = Run(ToolCallFormat.Hermes,
            "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\"}}\n</tool_call>");
        Assert.Equal("Let me check.", content);
        var call = Assert.Single(calls);
        Assert.Equal(("call_0", "get_weather", "{\"location\": \"Paris\"}"), (call.Id, call.Name, call.Arguments));
    }

    [Fact]
    public void HermesParallelCallsAreAllReadAndTheWhitespaceBetweenThemIsDropped()
    {
        var (content, calls, _) = Run(ToolCallFormat.Hermes,
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"timezone\": \"UTC\"}}\n</tool_call>\n");
        Assert.Equal("", content);
        Assert.Equal(["get_weather", "get_time"], calls.Select(c => c.Name));
        Assert.Equal(["call_0", "call_1"], calls.Select(c => c.Id));
    }

    [Fact]
    public void AMarkerSplitAcrossPushesIsHeldThenRecognisedAndNeverShown()
    {
        var parser = Parser(ToolCallFormat.Hermes);
        Assert.Equal("Hi", parser.Push("Hi <tool").Content);
        Assert.Equal("", parser.Push("_ca").Content);
        var o = parser.Push("ll>{\"name\":\"get_time\",\"arguments\":{}}</tool_");
        Assert.Equal("", o.Content); // the space before the marker is layout: held, then dropped with the call
        var end = parser.Push("call>");
        Assert.Equal("get_time", Assert.Single(end.Calls).Name);
        Assert.Empty(parser.Finish().Content);
    }

    [Fact]
    public void TextThatStartsLikeAMarkerButIsNotOneIsReleased()
    {
        var parser = Parser(ToolCallFormat.Hermes);
        Assert.Equal("a", parser.Push("a<tool_c").Content);
        Assert.Equal("<tool_cat> and more", parser.Push("at> and more").Content);
        var (content, calls, _) = Run(ToolCallFormat.Hermes, "x <tool_ca");
        Assert.Equal("x <tool_ca", content);
        Assert.Empty(calls);
    }

    [Theory]
    [InlineData("<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"location\": }</tool_call>")] // malformed JSON
    [InlineData("<tool_call>{\"name\": \"delete_everything\", \"arguments\": {}}</tool_call>")] // not a declared function
    [InlineData("<tool_call>{\"name\": \"get_time\", \"arguments\": [1]}</tool_call>")] // arguments not an object
    [InlineData("<tool_call>{\"name\": \"get_time\"} trailing</tool_call>")]
    public void AMalformedHermesCallIsReleasedAsTextExactlyAsWritten(string output)
    {
        var (content, calls, _) = Run(ToolCallFormat.Hermes, "Before ", output);
        Assert.Empty(calls);
        Assert.Equal("Before " + output, content);
    }

    [Fact]
    public void AnUnterminatedHermesCallIsACallWhenItsJsonIsCompleteAndTextOtherwise()
    {
        var (_, calls, _) = Run(ToolCallFormat.Hermes, "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"timezone\": \"UTC\"}}\n");
        Assert.Equal("get_time", Assert.Single(calls).Name);
        var (content, none, _) = Run(ToolCallFormat.Hermes, "<tool_call>\n{\"name\": \"get_time\", \"argu");
        Assert.Empty(none);
        Assert.Equal("<tool_call>\n{\"name\": \"get_time\", \"argu", content);
    }

    [Fact]
    public void ArgumentsAsAJsonStringHoldingAnObjectAreAccepted()
    {
        var (_, calls, _) = Run(ToolCallFormat.Hermes, "<tool_call>{\"name\": \"get_time\", \"arguments\": \"{\\\"timezone\\\": \\\"UTC\\\"}\"}</tool_call>");
        Assert.Equal("{\"timezone\": \"UTC\"}", Assert.Single(calls).Arguments);
    }

    [Fact]
    public void PlainTextWithoutCallsComesOutUnchangedWhitespaceIncluded()
    {
        const string text = "  Hello,\n world!  \n";
        foreach (var format in new[] { ToolCallFormat.Hermes, ToolCallFormat.Llama3, ToolCallFormat.Mistral })
        {
            var (content, calls, _) = Run(format, "  Hel", "lo,\n", " world!  ", "\n");
            Assert.Equal(text, content);
            Assert.Empty(calls);
        }
    }

    [Theory]
    [InlineData("{\"name\": \"get_weather\", \"parameters\": {\"location\": \"Paris\"}}")]
    [InlineData("<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"location\": \"Paris\"}}")]
    [InlineData("\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\"}}")]
    public void Llama3JsonCallsAreRead(string output)
    {
        var (content, calls, _) = Run(ToolCallFormat.Llama3, output[..5], output[5..]);
        Assert.Equal("", content);
        var call = Assert.Single(calls);
        Assert.Equal(("get_weather", "{\"location\": \"Paris\"}"), (call.Name, call.Arguments));
    }

    [Fact]
    public void Llama3CallsSeparatedBySemicolonsAreAllRead()
    {
        var (_, calls, _) = Run(ToolCallFormat.Llama3, "{\"name\": \"get_weather\", \"parameters\": {}}; {\"name\": \"get_time\", \"parameters\": {\"timezone\": \"UTC\"}}");
        Assert.Equal(["get_weather", "get_time"], calls.Select(c => c.Name));
    }

    [Fact]
    public void Llama3ReplyThatIsJsonButNotACallIsReleasedWhole()
    {
        var (content, calls, released) = Run(ToolCallFormat.Llama3, "{\"answer\"", ": 42}");
        Assert.Empty(calls);
        Assert.Equal("{\"answer\": 42}", content);
        Assert.Equal("", released[0]); // held until the end: it might have been a call
        var (text, _, streamed) = Run(ToolCallFormat.Llama3, "The answer", " is 42");
        Assert.Equal("The answer is 42", text);
        Assert.Equal("The answer", streamed[0]); // plain text streams at once
    }

    [Theory]
    [InlineData("[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\"}}, {\"name\": \"get_time\", \"arguments\": {}}]")]
    [InlineData("[TOOL_CALLS]get_weather[ARGS]{\"location\": \"Paris\"}[TOOL_CALLS]get_time[ARGS]{}")]
    [InlineData("[TOOL_CALLS]get_weather[CALL_ID]abc123456[ARGS]{\"location\": \"Paris\"}[TOOL_CALLS]get_time[ARGS]{}")]
    public void MistralCallsAreReadInBothLayouts(string output)
    {
        var (content, calls, _) = Run(ToolCallFormat.Mistral, output[..7], output[7..]);
        Assert.Equal("", content);
        Assert.Equal(["get_weather", "get_time"], calls.Select(c => c.Name));
        Assert.Equal("{\"location\": \"Paris\"}", calls[0].Arguments);
    }

    [Fact]
    public void AMalformedMistralCallIsReleasedAsTextMarkerIncluded()
    {
        var (content, calls, _) = Run(ToolCallFormat.Mistral, "ok [TOOL_CALLS][{\"name\": \"get_time\", ");
        Assert.Empty(calls);
        Assert.Equal("ok [TOOL_CALLS][{\"name\": \"get_time\", ", content);
    }

    /// <summary>However the output is cut into pushes (a marker split anywhere), the content and the calls are the same as for one push.</summary>
    [Fact]
    public void AnySplitOfTheOutputGivesTheSameResultAsOnePush()
    {
        string[] outputs =
        [
            "Sure. <tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Pa<ris>\"}}\n</tool_call>\n<tool_call>{\"name\": \"get_time\"}</tool_call> done",
            "<tool_c <tool_call>{\"name\": \"get_time\", \"arguments\": {\"x\": \"</tool\"}}</tool_call>",
            "no calls at all <tool_call",
            "<tool_call>{broken</tool_call> then <tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>",
        ];
        var cases = from output in Gen.Int[0, outputs.Length - 1].Select(i => outputs[i])
                    from cuts in Gen.Int[0, output.Length].Array[0, 8]
                    select (output, cuts);
        cases.Sample(c =>
        {
            var points = c.cuts.Distinct().Order().ToList();
            var chunks = new List<string>();
            var last = 0;
            foreach (var p in points)
            {
                chunks.Add(c.output[last..p]);
                last = p;
            }
            chunks.Add(c.output[last..]);
            var whole = Run(ToolCallFormat.Hermes, c.output);
            var split = Run(ToolCallFormat.Hermes, [.. chunks]);
            Assert.Equal(whole.Content, split.Content);
            Assert.Equal(whole.Calls, split.Calls);
            Assert.DoesNotContain("<tool_call>{\"name\": \"get_time\"", split.Content);
        }, iter: 500);
    }
}
