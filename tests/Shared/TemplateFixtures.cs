using System.Text.Json;
using Bulwark.Engine.Templates;
namespace Bulwark.Testing;

/// <summary>
/// The chat-template fixtures: 18 real templates × 14 conversations, each rendered by Python
/// Jinja2 set up as transformers sets it up (see ../shared/fixtures/chat-templates/README).
/// </summary>
public static class TemplateFixtures
{
    public static string Folder => Fixtures.PathOf("chat-templates");

    /// <summary>The clock transformers' strftime_now saw when the references were made.</summary>
    public static TimeProvider FrozenClock { get; } = new FixedClock(new DateTimeOffset(2025, 1, 15, 12, 0, 0, TimeSpan.Zero));

    public static IEnumerable<object[]> Pairs() => Pairs(_ => true);

    /// <summary>The (template, case) pairs whose expectation passes <paramref name="keep"/>.</summary>
    public static IEnumerable<object[]> Pairs(Func<JsonProperty, bool> keep)
    {
        if (!Fixtures.Available)
            return [["(fixtures missing)", "(fixtures missing)"]];
        using var index = JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, "expected", "index.json")));
        return index.RootElement.GetProperty("results").EnumerateObject()
            .SelectMany(t => t.Value.EnumerateObject().Where(keep).Select(c => new object[] { t.Name, c.Name }))
            .ToList();
    }

    public static string TemplateSource(string template) => File.ReadAllText(Path.Combine(Folder, template + ".jinja"));

    public static JsonElement Case(string name)
    {
        using var cases = JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, "cases.json")));
        return cases.RootElement.GetProperty("cases").EnumerateArray().First(c => c.GetProperty("name").GetString() == name).Clone();
    }

    public static JsonElement Expectation(string template, string caseName)
    {
        using var index = JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, "expected", "index.json")));
        return index.RootElement.GetProperty("results").GetProperty(template).GetProperty(caseName).Clone();
    }

    /// <summary>What the pair's rendering passed besides messages, tools, documents and add_generation_prompt (special tokens…).</summary>
    public static Dictionary<string, object?> Variables(string template, string caseName) =>
        Expectation(template, caseName).GetProperty("variables_besides_messages_tools_documents_add_generation_prompt")
            .EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value.Clone());

    /// <summary>The text Python Jinja2 rendered for the pair.</summary>
    public static string Expected(string template, string caseName) => File.ReadAllText(Path.Combine(Folder, "expected", template, caseName + ".txt"));

    /// <summary>Renders one pair exactly as render_templates.py does.</summary>
    public static string Render(string template, string caseName)
    {
        var testCase = Case(caseName);
        var variables = Variables(template, caseName);
        var chat = ChatTemplate.Parse(TemplateSource(template), clock: FrozenClock);
        JsonElement? tools = testCase.TryGetProperty("tools", out var t) ? t : null;
        return chat.RenderChat(testCase.GetProperty("messages"), tools, testCase.GetProperty("add_generation_prompt").GetBoolean(), variables);
    }

    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;

        public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;
    }
}
