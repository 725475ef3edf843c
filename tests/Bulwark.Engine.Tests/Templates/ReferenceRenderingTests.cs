using Bulwark.Engine.Templates.Jinja;
using Bulwark.Engine.Templates;
using Bulwark.Testing;

namespace Bulwark.Engine.Tests.Templates;

/// <summary>Every fixture pair renders byte for byte as Python Jinja2 rendered it, or fails as it failed.</summary>
public sealed class ReferenceRenderingTests
{
    public static IEnumerable<object[]> Pairs() => TemplateFixtures.Pairs();

    [FixtureTheory]
    [MemberData(nameof(Pairs))]
    public void RenderingMatchesJinja2(string template, string caseName)
    {
        var expectation = TemplateFixtures.Expectation(template, caseName);
        var folder = Path.Combine(TemplateFixtures.Folder, "expected", template);
        if (expectation.GetProperty("status").GetString() == "ok")
        {
            var expected = File.ReadAllText(Path.Combine(folder, caseName + ".txt"));
            var actual = TemplateFixtures.Render(template, caseName);
            Assert.Equal(expected, actual);
            return;
        }

        var error = Assert.Throws<TemplateException>(() => TemplateFixtures.Render(template, caseName));
        if (expectation.GetProperty("raised_by_template").GetBoolean())
        {
            Assert.True(error.RaisedByTemplate, $"expected raise_exception, got {error.Kind}: {error.Message}");
            Assert.Equal(File.ReadAllText(Path.Combine(folder, caseName + ".error")), error.Message);
        }
    }
}
