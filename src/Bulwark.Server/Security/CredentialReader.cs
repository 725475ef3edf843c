using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;

namespace Bulwark.Server.Security;

/// <summary>
/// Reads the one credential a request may carry: <c>Authorization: Bearer &lt;key&gt;</c>. The header
/// name and the scheme are case-insensitive (RFC 9110); one or more spaces may follow the scheme.
/// Refused: no header, two Authorization headers, other schemes, and any key-shaped value in the
/// query string (URLs end up in logs and proxies), so none of those can become a bypass.
/// </summary>
public static class CredentialReader
{
    public enum Outcome { Found, Missing, Malformed, InQueryString, Ambiguous }

    public static Outcome Read(HttpRequest request, out ReadOnlySpan<char> token)
    {
        token = default;
        if (QueryCarriesKey(request.Query)) return Outcome.InQueryString;

        var values = request.Headers.Authorization;
        if (values.Count == 0) return Outcome.Missing;
        if (values.Count > 1) return Outcome.Ambiguous;
        var header = (values[0] ?? "").AsSpan().Trim();
        if (header.Length == 0) return Outcome.Missing;
        if (header.Length < 7 || !header[..6].Equals("Bearer", StringComparison.OrdinalIgnoreCase) || header[6] != ' ')
            return Outcome.Malformed;
        var rest = header[7..].TrimStart(' ');
        if (rest.Length == 0 || rest.ContainsAny(' ', '\t', ',')) return Outcome.Malformed;
        token = rest;
        return Outcome.Found;
    }

    private static bool QueryCarriesKey(IQueryCollection query)
    {
        if (query.Count == 0) return false;
        foreach (var (name, values) in query)
        {
            if (IsCredentialName(name)) return true;
            foreach (var value in (StringValues)values)
                if (value is not null && (value.Contains(ApiKeyFormat.ApiPrefix, StringComparison.OrdinalIgnoreCase) ||
                                          value.Contains(ApiKeyFormat.AdminPrefix, StringComparison.OrdinalIgnoreCase)))
                    return true;
        }
        return false;
    }

    private static bool IsCredentialName(string name) =>
        name.Equals("api_key", StringComparison.OrdinalIgnoreCase) || name.Equals("api-key", StringComparison.OrdinalIgnoreCase) ||
        name.Equals("key", StringComparison.OrdinalIgnoreCase) || name.Equals("token", StringComparison.OrdinalIgnoreCase) ||
        name.Equals("access_token", StringComparison.OrdinalIgnoreCase) || name.Equals("authorization", StringComparison.OrdinalIgnoreCase);
}
