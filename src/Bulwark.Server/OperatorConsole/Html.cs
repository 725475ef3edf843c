using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Encodings.Web;

namespace Bulwark.Server.OperatorConsole;

/// <summary>
/// A piece of HTML that is safe to send: made by <see cref="Of"/>, whose interpolation holes are HTML-encoded
/// (ASP.NET Core's <see cref="HtmlEncoder"/>) unless they are <see cref="Html"/> themselves, so a key name, model
/// name or audit field an attacker chose reaches the page only as text. The literal parts are the console's own
/// markup. There is deliberately no way to wrap an arbitrary runtime string as <see cref="Html"/>.
/// </summary>
public readonly struct Html
{
    private readonly string? _text;

    private Html(string text) => _text = text;

    public static Html Empty => default;

    public static Html Of([InterpolatedStringHandlerArgument] HtmlInterpolation html) => new(html.Build());

    public static Html Join(IEnumerable<Html> parts)
    {
        var text = new StringBuilder();
        foreach (var part in parts) text.Append(part._text);
        return new Html(text.ToString());
    }

    public override string ToString() => _text ?? "";
}

/// <summary>Builds <see cref="Html"/>: literals as written, holes encoded (see <see cref="Html"/>).</summary>
[InterpolatedStringHandler]
public ref struct HtmlInterpolation
{
    private readonly StringBuilder _text;

    public HtmlInterpolation(int literalLength, int formattedCount) => _text = new StringBuilder(literalLength + formattedCount * 16);

    public void AppendLiteral(string literal) => _text.Append(literal);

    public void AppendFormatted(Html html) => _text.Append(html.ToString());

    public void AppendFormatted<T>(T value) => AppendFormatted(value, null);

    public void AppendFormatted<T>(T value, string? format)
    {
        switch (value)
        {
            case null: return;
            case Html html: _text.Append(html.ToString()); return;
            case IEnumerable<Html> parts:
                foreach (var part in parts) _text.Append(part.ToString());
                return;
            case IFormattable formattable: _text.Append(HtmlEncoder.Default.Encode(formattable.ToString(format, CultureInfo.InvariantCulture))); return;
            default: _text.Append(HtmlEncoder.Default.Encode(value.ToString() ?? "")); return;
        }
    }

    internal string Build() => _text.ToString();
}
