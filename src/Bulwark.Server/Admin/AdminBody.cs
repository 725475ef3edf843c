using Bulwark.Server.Api;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Bulwark.Server.Admin;

/// <summary>
/// The body of an admin route, read like every other route's (<see cref="JsonBody"/>, then <see cref="JsonFields"/>):
/// a field that is missing, of the wrong type, not text or repeated is a 400 naming it, in OpenAI's error shape.
/// </summary>
public static class AdminBody
{
    /// <summary>Free-form admin strings (names, tenants, reasons) are bounded here; their own rules come after.</summary>
    public const int MaxText = 1024;

    /// <summary>At most this many items in an array field (a key's model list).</summary>
    public const int MaxItems = 1024;

    public static async Task<T> ReadAsync<T>(HttpContext context, Func<JsonFields, T> read)
    {
        // The admin group can be mapped without the API (a security-only host); the default limits hold there.
        var limits = context.RequestServices.GetService<ApiLimits>() ?? DefaultLimits;
        using var body = await JsonBody.ReadAsync(context, limits);
        return read(new JsonFields(body.RootElement, ""));
    }

    /// <summary>As <see cref="ReadAsync{T}"/>, but a request without a body reads as <paramref name="empty"/>.</summary>
    public static Task<T> ReadOptionalAsync<T>(HttpContext context, Func<JsonFields, T> read, T empty) =>
        context.Request.ContentLength is 0 || (context.Request.ContentLength is null && !context.Request.Headers.ContainsKey("Transfer-Encoding"))
            ? Task.FromResult(empty)
            : ReadAsync(context, read);

    private static readonly ApiLimits DefaultLimits = new();
}
