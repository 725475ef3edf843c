using System.Text.Json;
using Bulwark.Server.Requests;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Api;

/// <summary>
/// Reads a request body as JSON within the size limit. Wrong content types are 415, oversized
/// bodies 413 and malformed JSON 400 — never a 500.
/// </summary>
public static class JsonBody
{
    private static readonly JsonDocumentOptions Options = new() { MaxDepth = 32, AllowTrailingCommas = false };

    public static async Task<JsonDocument> ReadAsync(HttpContext context, ApiLimits limits)
    {
        var request = context.Request;
        var contentType = request.ContentType;
        if (contentType is null || !IsJson(contentType))
            throw new ApiException(StatusCodes.Status415UnsupportedMediaType,
                $"Content-Type must be application/json; got {(contentType is null ? "none" : $"'{Truncate(contentType)}'")}. With curl, add -H \"Content-Type: application/json\".",
                "invalid_request_error", null, "unsupported_media_type");
        if (request.ContentLength > limits.MaxRequestBodyBytes) throw TooLarge(request.ContentLength.Value, limits);
        try
        {
            return await JsonDocument.ParseAsync(request.Body, Options, context.RequestAborted);
        }
        catch (JsonException e)
        {
            // The parser's message gives the line and byte position, which helps and reveals nothing.
            throw ApiException.Invalid("body", $"The request body is not valid JSON: {e.Message}", "invalid_json");
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw TooLarge(null, limits);
        }
    }

    private static ApiException TooLarge(long? length, ApiLimits limits) =>
        new(StatusCodes.Status413PayloadTooLarge,
            $"The request body must be at most {limits.MaxRequestBodyBytes} bytes; got {(length is { } n ? n.ToString(System.Globalization.CultureInfo.InvariantCulture) : "more")}.",
            "invalid_request_error", "body", "request_too_large");

    private static bool IsJson(string contentType)
    {
        var media = contentType.AsSpan();
        var semicolon = media.IndexOf(';');
        if (semicolon >= 0) media = media[..semicolon];
        media = media.Trim();
        return media.Equals("application/json", StringComparison.OrdinalIgnoreCase)
            || (media.StartsWith("application/", StringComparison.OrdinalIgnoreCase) && media.EndsWith("+json", StringComparison.OrdinalIgnoreCase));
    }

    private static string Truncate(string s) => s.Length <= 64 ? s : s[..64] + "...";
}
