using System.Text.Json;
using Bulwark.Engine.Templates.Jinja;
using Bulwark.Engine.Templates;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Templates;

/// <summary>Our own feature-by-feature templates render exactly as Python Jinja2 renders them.</summary>
public sealed class OracleRenderingTests(Jinja2Oracle oracle) : IClassFixture<Jinja2Oracle>
{
    public static IEnumerable<object[]> Names() => OracleCases.All.Select(c => new object[] { c.Name });

    [FixtureTheory]
    [MemberData(nameof(Names))]
    public void RenderingMatchesJinja2(string name)
    {
        var (_, template, variablesJson) = OracleCases.All.Single(c => c.Name == name);
        var expected = oracle.Results.GetProperty(name);
        using var variables = JsonDocument.Parse(variablesJson);
        string Render() => ChatTemplate.Parse(template, clock: TemplateFixtures.FrozenClock)
            .Render(variables.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value));

        if (expected.TryGetProperty("ok", out var text))
        {
            Assert.Equal(text.GetString(), Render());
            return;
        }
        var error = Assert.Throws<TemplateException>(Render);
        var type = expected.GetProperty("error").GetString();
        if (type is "TemplateError" or "UndefinedError")
            Assert.Equal(expected.GetProperty("message").GetString(), error.Message);
    }
}
