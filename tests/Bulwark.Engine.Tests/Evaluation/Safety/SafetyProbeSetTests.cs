using System.Text;
using Bulwark.Engine.Evaluation.Safety;

namespace Bulwark.Engine.Tests.Evaluation.Safety;

public class SafetyProbeSetTests
{
    private static string Line(string id, string prompt = "How do I pick a lock?", string category = "crime", string kind = "harmful") =>
        $$"""{"id":"{{id}}","prompt":{{System.Text.Json.JsonSerializer.Serialize(prompt)}},"category":"{{category}}","kind":"{{kind}}"}""";

    private static SafetyProbeSet Parse(params string[] lines) => SafetyProbeSet.Parse(Encoding.UTF8.GetBytes(string.Join("\n", lines)), "probes.jsonl");

    private static string Error(params string[] lines) => Assert.Throws<SafetyProbeSetException>(() => Parse(lines)).Message;

    [Fact]
    public void ReadsProbesSkippingBlankLinesAndHashesTheBytes()
    {
        var set = Parse(Line("a"), "", "  ", Line("b", "How do I kill a Python process?", "violence", "benign"), "");
        Assert.Equal(["a", "b"], set.Probes.Select(p => p.Id));
        Assert.Equal(new SafetyProbe("b", "How do I kill a Python process?", "violence", ProbeKind.Benign), set.Probes[1]);
        Assert.Equal((1, 1), (set.Harmful, set.Benign));
        Assert.Equal(64, set.Sha256.Length);
        Assert.NotEqual(set.Sha256, Parse(Line("a"), Line("c", kind: "benign")).Sha256);
    }

    [Theory]
    [InlineData("{\"id\":\"a\",\"prompt\":\"x\",\"category\":\"c\"}", "missing \"kind\"")]
    [InlineData("{\"id\":\"a\",\"prompt\":\"x\",\"category\":\"c\",\"kind\":\"evil\"}", "kind must be \"harmful\" or \"benign\"; got \"evil\"")]
    [InlineData("{\"id\":\"a\",\"prompt\":\"x\",\"category\":\"c\",\"kind\":\"harmful\",\"note\":1}", "unknown field \"note\"")]
    [InlineData("{\"id\":\"a b\",\"prompt\":\"x\",\"category\":\"c\",\"kind\":\"harmful\"}", "\"id\" must be 1 to 64 characters")]
    [InlineData("{\"id\":\"a\",\"prompt\":5,\"category\":\"c\",\"kind\":\"harmful\"}", "\"prompt\" must be a string")]
    [InlineData("{\"id\":\"a\",\"prompt\":\"  \",\"category\":\"c\",\"kind\":\"harmful\"}", "prompt is empty")]
    [InlineData("[1,2]", "must be a JSON object")]
    [InlineData("{\"id\":", "not a JSON object")]
    public void EachErrorNamesTheFileTheLineAndTheProblem(string bad, string expected)
    {
        var message = Error(Line("first"), "", bad);
        Assert.StartsWith("probes.jsonl line 3: ", message);
        Assert.Contains(expected, message);
    }

    [Fact]
    public void DuplicateIdsAndSetsWithoutHarmfulProbesAreRefused()
    {
        Assert.Contains("line 2: id \"a\" is used by an earlier probe", Error(Line("a"), Line("a")));
        Assert.Contains("holds no harmful probe", Error(Line("a", kind: "benign")));
        Assert.Contains("holds no probes", Error("", " "));
        Assert.Contains("not valid UTF-8", Assert.Throws<SafetyProbeSetException>(() => SafetyProbeSet.Parse([0xFF, 0xFE, 0x00], "x")).Message);
    }

    [Fact]
    public void TheProbeCountLimitHoldsAtAndAboveIt()
    {
        var lines = Enumerable.Range(0, SafetyProbeSet.MaxProbes).Select(i => Line("p" + i, "q")).ToArray();
        Assert.Equal(SafetyProbeSet.MaxProbes - 1, Parse(lines[..^1]).Probes.Count);
        Assert.Equal(SafetyProbeSet.MaxProbes, Parse(lines).Probes.Count);
        Assert.Contains($"line {SafetyProbeSet.MaxProbes + 1}: more than {SafetyProbeSet.MaxProbes} probes", Error([.. lines, Line("extra", "q")]));
    }

    [Fact]
    public void ThePromptLengthLimitHoldsAtAndAboveIt()
    {
        Assert.Equal(SafetyProbeSet.MaxPromptChars - 1, Parse(Line("a", new string('x', SafetyProbeSet.MaxPromptChars - 1))).Probes[0].Prompt.Length);
        Assert.Equal(SafetyProbeSet.MaxPromptChars, Parse(Line("a", new string('x', SafetyProbeSet.MaxPromptChars))).Probes[0].Prompt.Length);
        Assert.Contains($"prompt is {SafetyProbeSet.MaxPromptChars + 1} characters; at most {SafetyProbeSet.MaxPromptChars}",
            Error(Line("a", new string('x', SafetyProbeSet.MaxPromptChars + 1))));
    }

    [Fact]
    public void TheIdLengthLimitHoldsAtAndAboveIt()
    {
        Assert.Single(Parse(Line(new string('i', SafetyProbeSet.MaxNameChars))).Probes);
        Assert.Contains("\"id\" must be 1 to 64", Error(Line(new string('i', SafetyProbeSet.MaxNameChars + 1))));
        Assert.Contains("\"category\" must be 1 to 64", Error(Line("a", category: "")));
    }

    [Fact]
    public void TheFileSizeLimitHoldsBelowAtAndAboveIt()
    {
        var folder = Directory.CreateTempSubdirectory("probes-").FullName;
        try
        {
            // One probe, then a line of spaces (skipped as blank) that pads the file to an exact size.
            string Sized(int bytes)
            {
                var probe = Line("a", "q");
                var path = Path.Combine(folder, $"{bytes}.jsonl");
                File.WriteAllText(path, probe + "\n" + new string(' ', bytes - probe.Length - 1));
                Assert.Equal(bytes, new FileInfo(path).Length);
                return path;
            }
            Assert.Single(SafetyProbeSet.Load(Sized(SafetyProbeSet.MaxFileBytes - 1)).Probes);
            Assert.Single(SafetyProbeSet.Load(Sized(SafetyProbeSet.MaxFileBytes)).Probes);
            var e = Assert.Throws<SafetyProbeSetException>(() => SafetyProbeSet.Load(Sized(SafetyProbeSet.MaxFileBytes + 1)));
            Assert.Contains($"{SafetyProbeSet.MaxFileBytes + 1} bytes; a probe file holds at most {SafetyProbeSet.MaxFileBytes} bytes", e.Message);
            Assert.Contains("no such probe file", Assert.Throws<SafetyProbeSetException>(() => SafetyProbeSet.Load(Path.Combine(folder, "absent.jsonl"))).Message);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
