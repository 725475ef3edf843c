using System.CommandLine;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Bulwark.Engine.Tools;

namespace Bulwark.Bench.Constraints;

/// <summary>
/// <c>bench/run tools</c>: what tool calling costs besides decoding. (1) Compiling the <c>tool_choice: required</c>
/// grammar for 1, 16 and 128 functions (each with a typical parameter schema), which a request pays once per new
/// tool list (the grammar is cached). (2) Reading calls out of streamed text: the Hermes parser over a long reply
/// of text and calls, pushed a few characters at a time as tokens arrive; and the streaming reader of enforced calls
/// over a long run of calls in the grammar's layout, each push of arguments sent as a fragment.
/// </summary>
internal static class BenchToolsCommand
{
    private const string Parameters = """
        {"type":"object","properties":{"city":{"type":"string","maxLength":64},"days":{"type":"integer","minimum":1,"maximum":14},
         "unit":{"enum":["celsius","fahrenheit"]},"details":{"type":"array","items":{"type":"string"},"maxItems":8}},"required":["city","days"]}
        """;

    public static Command Create()
    {
        var megabytes = new Option<int>("--megabytes") { Description = "Characters of reply the parser reads, in MB.", DefaultValueFactory = _ => 8 };
        var chunk = new Option<int>("--chunk") { Description = "Characters per push (about one token).", DefaultValueFactory = _ => 4 };
        var command = new Command("tools", "Measure tool calling: the required grammar's compile time for 1, 16 and 128 functions, and the call parser's and the enforced calls' streaming reader's throughput on streamed text.")
        {
            megabytes, chunk,
        };
        command.SetAction(r =>
        {
            var output = r.InvocationConfiguration.Output;
            using var schema = JsonDocument.Parse(Parameters);
            foreach (var count in new[] { 1, 16, 128 })
            {
                var functions = Enumerable.Range(0, count).Select(i => new ToolFunction($"function_{i}", schema.RootElement)).ToList();
                ToolCallGrammar.Compile(ToolCallFormat.Hermes, functions, parallel: true); // warm-up: JIT
                var watch = Stopwatch.StartNew();
                const int rounds = 5;
                var items = 0;
                for (var i = 0; i < rounds; i++) items = ToolCallGrammar.Compile(ToolCallFormat.Hermes, functions, parallel: true).ItemCount;
                output.WriteLine($"required grammar, {count,3} functions: {watch.Elapsed.TotalMilliseconds / rounds:F2} ms to compile, {items} grammar items");
            }
            var text = Reply(r.GetValue(megabytes) << 20);
            var size = r.GetValue(chunk);
            var parser = new ToolCallParser(ToolCallFormat.Hermes, new HashSet<string> { "get_weather" }, () => "call_x");
            var calls = 0;
            var started = Stopwatch.StartNew();
            for (var at = 0; at < text.Length; at += size) calls += parser.Push(text.Substring(at, Math.Min(size, text.Length - at))).Calls.Count;
            calls += parser.Finish().Calls.Count;
            var seconds = started.Elapsed.TotalSeconds;
            output.WriteLine($"Hermes parser: {text.Length / 1e6:F1} M characters in {size}-character pushes, {calls} calls: {text.Length / 1e6 / seconds:F1} M characters/s ({seconds * 1e9 / (text.Length / (double)size):F0} ns per push)");

            var enforced = Calls(r.GetValue(megabytes) << 20);
            var reader = new ToolCallStreamReader(ToolCallFormat.Hermes, new HashSet<string> { "get_weather" }, () => "call_x");
            int opened = 0, fragments = 0;
            started.Restart();
            for (var at = 0; at < enforced.Length; at += size)
                foreach (var piece in reader.Push(enforced.Substring(at, Math.Min(size, enforced.Length - at))).Pieces)
                    if (piece.Id is null) fragments++;
                    else opened++;
            reader.Finish();
            seconds = started.Elapsed.TotalSeconds;
            output.WriteLine($"Hermes streaming reader (enforced calls): {enforced.Length / 1e6:F1} M characters in {size}-character pushes, {opened} calls, {fragments} argument fragments: {enforced.Length / 1e6 / seconds:F1} M characters/s ({seconds * 1e9 / (enforced.Length / (double)size):F0} ns per push)");
            return 0;
        });
        return command;
    }

    /// <summary>Calls in the layout of the required grammar (parallel: separated by a newline), nothing else.</summary>
    private static string Calls(int characters)
    {
        var text = new StringBuilder(characters + 256);
        const string call = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 3, \"details\": [\"wind\", \"rain\"]}}\n</tool_call>";
        text.Append(call);
        while (text.Length < characters) text.Append('\n').Append(call);
        return text.ToString();
    }

    /// <summary>Prose with a call every few hundred characters, some of it split across pushes wherever the chunks fall.</summary>
    private static string Reply(int characters)
    {
        var text = new StringBuilder(characters + 256);
        const string prose = "The forecast says the weather will be mild with a chance of rain in the evening; ";
        const string call = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 3}}\n</tool_call>\n";
        while (text.Length < characters) text.Append(prose).Append(prose).Append(call);
        return text.ToString();
    }
}
