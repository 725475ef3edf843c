using Bulwark.Server.OperatorConsole;

namespace Bulwark.Server.Tests.OperatorConsole;

public sealed class HtmlTests
{
    [Theory]
    [InlineData("<script>alert(1)</script>")]
    [InlineData("\"><img src=x onerror=alert(1)>")]
    [InlineData("' onmouseover='alert(1)")]
    [InlineData("&lt;already&gt; & </textarea>")]
    public void EveryHoleIsEncodedSoNoMarkupOrQuoteSurvives(string hostile)
    {
        var html = Html.Of($"""<td title="{hostile}">{hostile}</td>""").ToString();
        Assert.StartsWith("<td title=\"", html);
        Assert.EndsWith("</td>", html);
        var inner = html["<td title=\"".Length..^"</td>".Length];
        Assert.DoesNotContain('<', inner);
        Assert.DoesNotContain('"', inner.Replace("\">", "", StringComparison.Ordinal));
        Assert.DoesNotContain('\'', inner);
        Assert.Equal(hostile, System.Net.WebUtility.HtmlDecode(inner.Split("\">")[1]));
    }

    [Fact]
    public void HtmlPiecesNestWithoutBeingEncodedTwice()
    {
        var cells = new[] { "a<b", "c" }.Select(t => Html.Of($"<li>{t}</li>"));
        Assert.Equal("<ul><li>a&lt;b</li><li>c</li></ul>", Html.Of($"<ul>{cells}</ul>").ToString());
        Assert.Equal("<p>1.5</p>", Html.Of($"<p>{1.5}</p>").ToString());
        Assert.Equal("<p></p>", Html.Of($"<p>{(string?)null}</p>").ToString());
    }
}
