using System.Globalization;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Requests;

/// <summary>
/// How long one generation request may take, from arrival to its last token: the server's default
/// (<c>Bulwark:Limits:RequestTimeout</c>), or less or more when the client asks with the
/// <see cref="Header"/> header, never more than <see cref="Max"/> (<c>Bulwark:Limits:MaxRequestTimeout</c>).
/// </summary>
public sealed record RequestDeadline(TimeSpan Default, TimeSpan Max)
{
    /// <summary>The client's own deadline in seconds (decimals allowed), e.g. <c>X-Bulwark-Timeout: 30</c>.</summary>
    public const string Header = "X-Bulwark-Timeout";

    /// <summary>The deadline of <paramref name="request"/>.</summary>
    /// <exception cref="ApiException">400 naming the header when its value is not a number of seconds in (0, <see cref="Max"/>].</exception>
    public TimeSpan For(HttpRequest request)
    {
        var values = request.Headers[Header];
        if (values.Count == 0) return Default;
        var text = values.Count == 1 ? values[0] : null;
        if (text is null || text.Length > 32
            || !double.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var seconds)
            || !double.IsFinite(seconds) || seconds <= 0 || seconds > Max.TotalSeconds)
            throw ApiException.Invalid(Header,
                $"{Header} must be one number of seconds more than 0 and at most {Max.TotalSeconds:0.###} (the server's maximum); got '{Shown(values.ToString())}'.");
        return TimeSpan.FromSeconds(seconds);
    }

    private static string Shown(string value) => value.Length <= 40 ? value : value[..40] + "...";
}
