using System.Text;
using System.Text.Json;
using Bulwark.Engine.Serving.Constraints;

namespace Bulwark.Engine.Tests.Serving.Constraints;

public class GrammarTests
{
    private static bool Match(Grammar g, string s) => g.Matches(Encoding.UTF8.GetBytes(s));

    [Theory]
    [InlineData("{}", true)]
    [InlineData("{ \"a\" : [1, -2.5, true, null, \"x\\n\\u00e9\"] }", true)]
    [InlineData("{\"é\":{\"b\":{}}}", true)]
    [InlineData("[]", false)]
    [InlineData("{", false)]
    [InlineData("{\"a\":01}", false)]
    [InlineData("{\"a\":1e5}", false)]
    [InlineData("{\"a\":\"\\ud800\"}", false)]
    [InlineData(" {}", false)]
    public void JsonObjectGrammarAcceptsObjectsOnly(string text, bool valid) => Assert.Equal(valid, Match(GrammarCompiler.JsonObject(), text));

    [Fact]
    public void WhitespaceIsBoundedSoAModelCannotLoopOnSpaces()
    {
        var g = GrammarCompiler.JsonObject();
        Assert.True(Match(g, "{" + new string(' ', JsonGrammar.MaxWhitespace) + "}"));
        Assert.False(g.IsPrefix(Encoding.UTF8.GetBytes("{" + new string(' ', 2 * JsonGrammar.MaxWhitespace + 1))));
    }

    [Fact]
    public void InvalidUtf8IsNeverAPrefixButASplitCharacterIs()
    {
        var g = GrammarCompiler.Json();
        Assert.True(g.IsPrefix([(byte)'"', 0xC3]));
        Assert.True(Match(g, "\"é\""));
        Assert.False(g.IsPrefix([(byte)'"', 0xC3, (byte)'"']));
        Assert.False(g.IsPrefix([(byte)'"', 0xFF]));
    }

    [Fact]
    public void SchemaFixesPropertyOrderAndRequiresRequired()
    {
        using var doc = JsonDocument.Parse("""{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"}},"required":["b"]}""");
        var g = GrammarCompiler.JsonSchema(doc.RootElement);
        Assert.True(Match(g, "{\"b\":\"x\"}"));
        Assert.True(Match(g, "{\"a\":1,\"b\":\"x\"}"));
        Assert.False(Match(g, "{\"b\":\"x\",\"a\":1}"));
        Assert.False(Match(g, "{\"a\":1}"));
        Assert.False(Match(g, "{}"));
    }

    [Theory]
    [InlineData("""{"type":"string","minLength":2,"maxLength":3}""", "\"ab\"", true)]
    [InlineData("""{"type":"string","minLength":2,"maxLength":3}""", "\"a\"", false)]
    [InlineData("""{"type":"string","minLength":2,"maxLength":3}""", "\"a\\nb\"", true)]
    [InlineData("""{"type":"string","minLength":2,"maxLength":3}""", "\"abcd\"", false)]
    [InlineData("""{"type":"integer","minimum":-5,"maximum":120}""", "-5", true)]
    [InlineData("""{"type":"integer","minimum":-5,"maximum":120}""", "-6", false)]
    [InlineData("""{"type":"integer","minimum":-5,"maximum":120}""", "120", true)]
    [InlineData("""{"type":"integer","minimum":-5,"maximum":120}""", "121", false)]
    [InlineData("""{"type":"integer","exclusiveMinimum":0}""", "0", false)]
    [InlineData("""{"enum":["a",1,null]}""", "null", true)]
    [InlineData("""{"enum":["a",1,null]}""", "2", false)]
    [InlineData("""{"const":{"k":[1]}}""", "{\"k\":[1]}", true)]
    [InlineData("""{"type":"array","items":{"type":"boolean"},"minItems":1,"maxItems":2}""", "[true]", true)]
    [InlineData("""{"type":"array","items":{"type":"boolean"},"minItems":1,"maxItems":2}""", "[]", false)]
    [InlineData("""{"type":"array","items":{"type":"boolean"},"minItems":1,"maxItems":2}""", "[true,false,true]", false)]
    [InlineData("""{"type":["string","null"]}""", "null", true)]
    [InlineData("""{"anyOf":[{"type":"integer"},{"type":"boolean"}]}""", "true", true)]
    [InlineData("""{"$defs":{"n":{"type":"object","properties":{"c":{"$ref":"#/$defs/n"}}}},"$ref":"#/$defs/n"}""", "{\"c\":{\"c\":{}}}", true)]
    [InlineData("""{"type":"string","pattern":"^[a-z]+\\d$"}""", "\"abc1\"", true)]
    [InlineData("""{"type":"string","pattern":"^[a-z]+\\d$"}""", "\"abc\"", false)]
    [InlineData("""{"type":"string","pattern":"b"}""", "\"abc\"", true)]
    [InlineData("""{"type":"string","format":"uuid"}""", "\"123e4567-e89b-12d3-a456-426614174000\"", true)]
    [InlineData("""{"type":"string","format":"ipv4"}""", "\"256.1.1.1\"", false)]
    [InlineData("""{"type":"number","minimum":0}""", "-1", false)]
    [InlineData("""{"type":"number","minimum":0}""", "1.5", true)]
    [InlineData("""{"type":"array","prefixItems":[{"type":"integer"},{"type":"string"}],"items":false}""", "[1,\"a\"]", true)]
    public void SchemaKeywordsAreEnforced(string schema, string text, bool valid)
    {
        using var doc = JsonDocument.Parse(schema);
        Assert.Equal(valid, Match(GrammarCompiler.JsonSchema(doc.RootElement), text));
    }

    [Theory]
    [InlineData("""{"type":"object","minProperties":1}""", "$.minProperties", "minProperties")]
    [InlineData("""{"type":"object","properties":{"a":{"type":"string","format":"email"}}}""", "$.properties.a.format", "format")]
    [InlineData("""{"type":"array","uniqueItems":true}""", "$.uniqueItems", "uniqueItems")]
    [InlineData("""{"allOf":[{"type":"string"},{"minLength":1}]}""", "$.allOf", "allOf")]
    [InlineData("""{"type":"number","maximum":3}""", "$.maximum", "maximum")]
    [InlineData("""{"not":{"type":"string"}}""", "$.not", "not")]
    [InlineData("""{"$ref":"http://example.com/s.json"}""", "$.$ref", "$ref")]
    [InlineData("""{"type":"string","pattern":"(a)\\1"}""", "$.pattern", "pattern")]
    [InlineData("""{"type":"string","pattern":"(?=a)a"}""", "$.pattern", "pattern")]
    public void UnenforceableKeywordsAreRefusedWithPathAndKeyword(string schema, string path, string keyword)
    {
        using var doc = JsonDocument.Parse(schema);
        var e = Assert.Throws<ConstraintException>(() => GrammarCompiler.JsonSchema(doc.RootElement));
        Assert.Equal(path, e.Path);
        Assert.Equal(keyword, e.Keyword);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void ASchemaWithNoFiniteValueIsRefused()
    {
        using var doc = JsonDocument.Parse("""{"$defs":{"n":{"type":"object","properties":{"c":{"$ref":"#/$defs/n"}},"required":["c"]}},"$ref":"#/$defs/n"}""");
        Assert.Throws<ConstraintException>(() => GrammarCompiler.JsonSchema(doc.RootElement));
    }

    [Fact]
    public void IntegerRangesMatchExactlyTheIntegersBetweenTheBounds()
    {
        var random = new Random(5);
        for (var trial = 0; trial < 40; trial++)
        {
            long lo = random.Next(-2000, 2000), hi = lo + random.Next(0, 3000);
            using var doc = JsonDocument.Parse($$"""{"type":"integer","minimum":{{lo}},"maximum":{{hi}}}""");
            var g = GrammarCompiler.JsonSchema(doc.RootElement);
            for (var v = lo - 30; v <= hi + 30; v += 1 + random.Next(0, 50))
                Assert.True((v >= lo && v <= hi) == Match(g, v.ToString(System.Globalization.CultureInfo.InvariantCulture)), $"{v} in [{lo},{hi}]");
            Assert.False(Match(g, "-0"));
        }
    }

    [Fact]
    public void ChoicesMatchExactlyTheirStrings()
    {
        var g = GrammarCompiler.Choice(["yes", "no", "nö"]);
        Assert.True(Match(g, "nö"));
        Assert.True(Match(g, "no"));
        Assert.False(Match(g, "n"));
        Assert.False(Match(g, "yess"));
    }
}
