using System.Text.Json;
using Bulwark.Server.Api;
using Bulwark.Server.Requests;

namespace Bulwark.Server.Tests.Api;

/// <summary>Each structured-output limit of <see cref="ApiLimits"/> held at, below and above its value.</summary>
public sealed class ConstraintFieldsTests
{
    private static readonly ApiLimits Limits = new()
    {
        MaxSchemaBytes = 200, MaxSchemaDepth = 3, MaxSchemaEnumValues = 4, MaxSchemaProperties = 3,
        MaxRegexLength = 10, MaxRegexStates = 40, MaxGuidedChoices = 3, MaxGuidedChoiceLength = 5,
    };

    private static OutputConstraint? Read(string body)
    {
        using var doc = JsonDocument.Parse(body);
        return ConstraintFields.Read(new JsonFields(doc.RootElement, ""), Limits, responseFormat: true).Constraint;
    }

    private static void AtBelowAbove(Func<int, string> body, int limit, string param)
    {
        Assert.NotNull(Read(body(limit - 1)));
        Assert.NotNull(Read(body(limit)));
        var e = Assert.Throws<ApiException>(() => Read(body(limit + 1)));
        Assert.Equal(400, e.Status);
        Assert.StartsWith(param, e.Param);
        Assert.Contains(limit.ToString(System.Globalization.CultureInfo.InvariantCulture), e.Message);
    }

    private static string Enum(int n) => "{\"guided_json\":{\"enum\":[" + string.Join(",", Enumerable.Range(0, n)) + "]}}";

    [Fact]
    public void EnumSize() => AtBelowAbove(Enum, 4, "guided_json.enum");

    [Fact]
    public void PropertyCount() => AtBelowAbove(n =>
        "{\"guided_json\":{\"type\":\"object\",\"properties\":{" + string.Join(",", Enumerable.Range(0, n).Select(i => $"\"p{i}\":{{}}")) + "}}}", 3, "guided_json.properties");

    [Fact]
    public void SchemaDepth() => AtBelowAbove(n =>
        "{\"guided_json\":" + string.Concat(Enumerable.Repeat("{\"items\":", n)) + "{}" + new string('}', n) + "}", 3, "guided_json");

    [Fact]
    public void SchemaBytes() => AtBelowAbove(n =>
    {
        var schema = """{"description":"","type":"string"}""";
        var padding = new string('x', n - schema.Length);
        return "{\"guided_json\":" + schema.Replace("\"\"", "\"" + padding + "\"") + "}";
    }, 200, "guided_json");

    [Fact]
    public void RegexLength() => AtBelowAbove(n => $$"""{"guided_regex":"{{new string('a', n)}}"}""", 10, "guided_regex");

    [Fact]
    public void RegexStates()
    {
        // a{n-1} needs n automaton states.
        AtBelowAbove(n => $$"""{"guided_regex":"a{{{n - 1}}}"}""", 40, "guided_regex");
    }

    [Fact]
    public void ChoiceCount() => AtBelowAbove(n => "{\"guided_choice\":[" + string.Join(",", Enumerable.Range(0, n).Select(i => $"\"c{i}\"")) + "]}", 3, "guided_choice");

    [Fact]
    public void ChoiceLength() => AtBelowAbove(n => $$"""{"guided_choice":["{{new string('c', n)}}"]}""", 5, "guided_choice");

    [Fact]
    public void StrictFalseIsEnforcedAsStrictTrue()
    {
        var strict = Read("""{"response_format":{"type":"json_schema","json_schema":{"name":"n","strict":true,"schema":{"type":"boolean"}}}}""")!;
        var loose = Read("""{"response_format":{"type":"json_schema","json_schema":{"name":"n","strict":false,"schema":{"type":"boolean"}}}}""")!;
        foreach (var c in new[] { strict, loose })
        {
            Assert.True(c.Grammar.Matches("true"u8));
            Assert.False(c.Grammar.Matches("\"true\""u8));
        }
    }

    [Fact]
    public void ARepeatedConstraintSharesOneGrammarSoItsMasksAreShared()
    {
        const string body = """{"guided_json":{"type":"object","properties":{"shared":{"type":"integer"}}}}""";
        Assert.Same(Read(body)!.Grammar, Read(body)!.Grammar);
        Assert.NotSame(Read(body)!.Grammar, Read("""{"guided_json":{"type":"object","properties":{"other":{"type":"integer"}}}}""")!.Grammar);
        // Refusals are not cached: the same refused constraint is refused again.
        Assert.Throws<ApiException>(() => Read("""{"guided_regex":"(a"}"""));
        Assert.Throws<ApiException>(() => Read("""{"guided_regex":"(a"}"""));
    }

    [Theory]
    [InlineData(nameof(ApiLimits.MaxSchemaBytes), 16, 16 * 1024 * 1024)]
    [InlineData(nameof(ApiLimits.MaxSchemaDepth), 1, 64)]
    [InlineData(nameof(ApiLimits.MaxSchemaEnumValues), 1, 100_000)]
    [InlineData(nameof(ApiLimits.MaxSchemaProperties), 1, 100_000)]
    [InlineData(nameof(ApiLimits.MaxRegexLength), 1, 100_000)]
    [InlineData(nameof(ApiLimits.MaxRegexStates), 2, 100_000)]
    [InlineData(nameof(ApiLimits.MaxGuidedChoices), 1, 100_000)]
    [InlineData(nameof(ApiLimits.MaxGuidedChoiceLength), 1, 100_000)]
    [InlineData(nameof(ApiLimits.MaxTools), 1, 10_000)]
    [InlineData(nameof(ApiLimits.MaxToolNameLength), 1, 1024)]
    [InlineData(nameof(ApiLimits.MaxToolsBytes), 64, 16 * 1024 * 1024)]
    public void SettingsAreCheckedAtStartUpAtTheirBounds(string name, int min, int max)
    {
        IEnumerable<string> With(int value)
        {
            var limits = new ApiLimits();
            typeof(ApiLimits).GetProperty(name)!.SetValue(limits, value);
            return limits.Validate();
        }
        Assert.Empty(With(min));
        Assert.Empty(With(max));
        Assert.Contains(With(min - 1), m => m.StartsWith($"Bulwark:Limits:{name} must be between {min} and {max}", StringComparison.Ordinal));
        Assert.Contains(With(max + 1), m => m.StartsWith($"Bulwark:Limits:{name} must be between {min} and {max}", StringComparison.Ordinal));
    }
}
