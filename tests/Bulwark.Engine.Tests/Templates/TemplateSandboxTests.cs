using System.Text.Json;
using System.Text;
using Bulwark.Engine.Templates.Jinja;
using Bulwark.Engine.Templates;

namespace Bulwark.Engine.Tests.Templates;

/// <summary>
/// Hostile templates, as a downloaded GGUF could carry (SGLang CVE-2026-5760 was remote code
/// execution through an unsandboxed chat template): every attack ends in a
/// <see cref="TemplateException"/> (the server's 400) within the limits, never a crash, a hang,
/// or a .NET object in the output.
/// </summary>
public sealed class TemplateSandboxTests
{
    private static readonly JsonElement NoMessages = JsonDocument.Parse("[]").RootElement;

    private static TemplateException Fails(string source, TemplateLimits? limits = null)
    {
        var error = Assert.Throws<TemplateException>(() => ChatTemplate.Parse(source, limits).RenderChat(NoMessages, null, true));
        Assert.DoesNotContain("System.", error.Message);
        Assert.DoesNotContain("Bulwark", error.Message);
        Assert.DoesNotContain(" at ", error.Message);
        return error;
    }

    [Theory]
    [InlineData("{% for i in range(1000000000) %}{% endfor %}")]
    [InlineData("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}")]
    [InlineData("{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}{{ '' }}{% endfor %}{% endfor %}{% endfor %}")]
    public void EndlessLoopsStopAtTheIterationOrCollectionLimit(string source)
    {
        var error = Fails(source);
        Assert.Equal(TemplateErrorKind.Limit, error.Kind);
    }

    [Fact]
    public void TheIterationLimitIsExactAcrossLoops()
    {
        var limits = TemplateLimits.Default with { MaxLoopIterations = 100 };
        Assert.Equal(new string('x', 100), ChatTemplate.Parse("{% for i in range(50) %}x{% endfor %}{% for i in range(50) %}x{% endfor %}", limits).Render(new Dictionary<string, object?>()));
        Assert.Equal(TemplateErrorKind.Limit, Fails("{% for i in range(50) %}x{% endfor %}{% for i in range(51) %}x{% endfor %}", limits).Kind);
    }

    [Theory]
    [InlineData("{{ ''.__class__ }}")]
    [InlineData("{{ ''.__class__.__mro__[1].__subclasses__() }}")]
    [InlineData("{{ ''['__class__'] }}")]
    [InlineData("{{ messages.__class__.__base__ }}")]
    [InlineData("{{ raise_exception.__globals__ }}")]
    [InlineData("{{ namespace.__init__.__globals__['os'] }}")]
    [InlineData("{{ range.__self__ }}")]
    [InlineData("{{ (1).__class__ }}")]
    [InlineData("{% set ns = namespace() %}{{ ns.__dict__ }}")]
    [InlineData("{{ dict(a=1).__class__ }}")]
    [InlineData("{% set xs = [1] %}{% for x in xs %}{% set _ = xs.append(x) %}{% endfor %}")]
    [InlineData("{{ '{:>999999999}'.format(1) }}")]
    [InlineData("{{ ''.__doc__ }}")]
    public void DunderAttributesAndMutatorsAreRefusedAsInTransformersImmutableSandbox(string source)
    {
        var error = Fails(source);
        Assert.True(error.Kind is TemplateErrorKind.Security or TemplateErrorKind.Undefined, $"{error.Kind}: {error.Message}");
    }

    [Theory]
    [InlineData("{{ ''.GetType() }}")]
    [InlineData("{{ ''.GetType().Assembly }}")]
    [InlineData("{{ messages.GetType() }}")]
    [InlineData("{{ ''.Length }}")]
    [InlineData("{{ [].Count }}")]
    [InlineData("{{ ''.ToString() }}")]
    [InlineData("{{ raise_exception.Method }}")]
    [InlineData("{{ cycler.__init__ }}")]
    [InlineData("{{ lipsum.__globals__ }}")]
    [InlineData("{{ self }}")]
    [InlineData("{{ config.items() }}")]
    [InlineData("{{ request.environ }}")]
    [InlineData("{{ joiner() }}")]
    public void DotNetMembersAndFlaskStyleGlobalsAreNotReachable(string source)
    {
        // Jinja renders an undefined name as "" but fails on calling or indexing it; either way
        // nothing from .NET or the host may appear.
        try
        {
            var rendering = ChatTemplate.Parse(source).RenderChat(NoMessages, null, true);
            Assert.Equal("", rendering);
        }
        catch (TemplateException error)
        {
            Assert.DoesNotContain("System.", error.Message);
        }
    }

    [Theory]
    [InlineData("{% import 'os' as os %}")]
    [InlineData("{% include '/etc/passwd' %}")]
    [InlineData("{% extends 'base.html' %}")]
    [InlineData("{% from 'x' import y %}")]
    public void LoadingOtherTemplatesOrFilesIsNotSupported(string source)
    {
        var error = Assert.Throws<TemplateException>(() => ChatTemplate.Parse(source).RenderChat(NoMessages, null, true));
        Assert.DoesNotContain("root:", error.Message);
    }

    [Theory]
    [InlineData("{% set ns = namespace(s='a') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}")]
    [InlineData("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}")]
    [InlineData("{{ 'a' * 10000000000 }}")]
    [InlineData("{{ 'ab' * 3000000 }}")]
    [InlineData("{{ [0] * 1000000000 }}")]
    [InlineData("{{ range(10000000000) | list }}")]
    [InlineData("{{ ('a' ~ '\\n' ~ 'b') | indent(999999999) }}")]
    [InlineData("{{ ('a' ~ '\\n' ~ 'b') | indent(999999999, true) }}")]
    [InlineData("{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}")]
    [InlineData("{{ ('a' * 1000000) | replace('a', 'aaaaaaaaaa') }}")]
    [InlineData("{% for i in range(100000) %}{{ 'abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz' }}{% endfor %}")]
    public void ExponentialOrHugeGrowthStopsAtTheSizeLimits(string source)
    {
        var error = Fails(source);
        Assert.Equal(TemplateErrorKind.Limit, error.Kind);
    }

    [Fact]
    public void TheOutputLimitIsExact()
    {
        var limits = TemplateLimits.Default with { MaxOutputLength = 1000 };
        Assert.Equal(1000, ChatTemplate.Parse("{{ 'x' * 1000 }}", limits).Render(new Dictionary<string, object?>()).Length);
        Assert.Equal(TemplateErrorKind.Limit, Fails("{{ 'x' * 1001 }}", limits).Kind);
        Assert.Equal(TemplateErrorKind.Limit, Fails("{{ 'x' * 600 }}{{ 'y' * 401 }}", limits).Kind);
    }

    [Theory]
    [InlineData("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}")]
    [InlineData("{% macro a() %}{{ b() }}{% endmacro %}{% macro b() %}{{ a() }}{% endmacro %}{{ a() }}")]
    [InlineData("{% macro f(n) %}{{ f(n) ~ f(n) }}{% endmacro %}{{ f(0) }}")]
    public void RunawayRecursionStopsAtTheCallDepthLimit(string source)
    {
        var error = Fails(source);
        Assert.Equal(TemplateErrorKind.Limit, error.Kind);
    }

    [Fact]
    public void TheCallDepthLimitIsExact()
    {
        var limits = TemplateLimits.Default with { MaxCallDepth = 10 };
        const string source = "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% else %}done{% endif %}{% endmacro %}{{ f(depth) }}";
        var template = ChatTemplate.Parse(source, limits);
        Assert.Equal("done", template.Render(new Dictionary<string, object?> { ["depth"] = 9 }));
        Assert.Equal(TemplateErrorKind.Limit, Assert.Throws<TemplateException>(() => template.Render(new Dictionary<string, object?> { ["depth"] = 10 })).Kind);
    }

    [Theory]
    [InlineData(5_000, "(", ")")]
    [InlineData(5_000, "[", "]")]
    [InlineData(5_000, "{% if true %}", "{% endif %}")]
    [InlineData(5_000, "{% for x in [1] %}", "{% endfor %}")]
    [InlineData(5_000, "-", "")]
    [InlineData(5_000, "not ", "")]
    public void DeeplyNestedSourceIsRefusedWithoutOverflowingTheStack(int depth, string open, string close)
    {
        var source = new StringBuilder("{{ ");
        if (open.StartsWith("{%", StringComparison.Ordinal))
            source.Clear();
        for (var i = 0; i < depth; i++) source.Append(open);
        source.Append(open.StartsWith("{%", StringComparison.Ordinal) ? "x" : "1");
        for (var i = 0; i < depth; i++) source.Append(close);
        if (!open.StartsWith("{%", StringComparison.Ordinal)) source.Append(" }}");
        var limits = TemplateLimits.Default with { MaxSourceLength = 4 * 1024 * 1024 };
        var error = Assert.Throws<TemplateException>(() => ChatTemplate.Parse(source.ToString(), limits).RenderChat(NoMessages, null, true));
        Assert.Equal(TemplateErrorKind.Limit, error.Kind);
    }

    [Fact]
    public void DeeplyNestedRequestDataIsRefused()
    {
        var json = new string('[', 300) + new string(']', 300);
        using var document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 1000 });
        var messages = JsonDocument.Parse($$"""[{"role": "user", "content": {{json}}}]""", new JsonDocumentOptions { MaxDepth = 1000 }).RootElement;
        var error = Assert.Throws<TemplateException>(() => ChatTemplate.Parse("{{ messages }}").RenderChat(messages, null, true));
        Assert.Equal(TemplateErrorKind.Limit, error.Kind);
    }

    [Fact]
    public void AnOverlongSourceIsRefusedBeforeParsing()
    {
        var limits = TemplateLimits.Default with { MaxSourceLength = 100 };
        Assert.Equal("x", ChatTemplate.Parse(new string(' ', 99) + "x", limits).Render(new Dictionary<string, object?>()).Trim());
        Assert.Equal(TemplateErrorKind.Limit, Assert.Throws<TemplateException>(() => ChatTemplate.Parse(new string('x', 101), limits)).Kind);
    }

    [Fact]
    public void ATemplatesOwnErrorIsReportedAsRaisedWithItsMessage()
    {
        var error = Fails("{% if messages | length == 0 %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}");
        Assert.True(error.RaisedByTemplate);
        Assert.Equal("Conversation roles must alternate user/assistant/user/assistant/...", error.Message);
    }

    [Fact]
    public void SyntaxErrorsAreTemplateExceptionsWithALine()
    {
        var error = Assert.Throws<TemplateException>(() => ChatTemplate.Parse("line one\n{% for x in %}\n"));
        Assert.Equal(TemplateErrorKind.Syntax, error.Kind);
        Assert.Equal(2, error.Line);
    }
}
