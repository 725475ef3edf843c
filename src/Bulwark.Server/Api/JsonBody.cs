using System.Buffers;
using System.Text.Json;
using Bulwark.Engine.Memory;
using Bulwark.Server.Requests;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Api;

/// <summary>
/// Reads a request body as JSON within the size limit, for every route that takes one. Wrong
/// content types are 415, oversized bodies 413, and a body that is not strict JSON
/// (<see cref="StrictJson"/>: malformed, strings that are not text, too deep, a key twice) 400
/// naming the field — never a 500, so the routes' parsers read only strings that decode.
/// </summary>
public static class JsonBody
{
    private static readonly JsonDocumentOptions Options = new() { MaxDepth = StrictJson.MaxDepth, AllowTrailingCommas = false, AllowDuplicateProperties = false };

    public static async Task<JsonDocument> ReadAsync(HttpContext context, ApiLimits limits)
    {
        var request = context.Request;
        var contentType = request.ContentType;
        if (contentType is null || !IsJson(contentType))
            throw new ApiException(StatusCodes.Status415UnsupportedMediaType,
                $"Content-Type must be application/json; got {(contentType is null ? "none" : $"'{Truncate(contentType)}'")}. With curl, add -H \"Content-Type: application/json\".",
                "invalid_request_error", null, "unsupported_media_type");
        if (request.ContentLength > limits.MaxRequestBodyBytes) throw TooLarge(request.ContentLength.Value, limits);
        return Parse(await ReadBytesAsync(context, limits));
    }

    /// <summary>
    /// The body's bytes as a document, after <see cref="StrictJson.Check"/>; what <see cref="ReadAsync"/> does once the
    /// bytes are in (and what the fuzz targets call). The document reads <paramref name="utf8"/> in place, so it must outlive it.
    /// </summary>
    /// <exception cref="ApiException">400 naming the field (the path of the key, or <c>body</c>).</exception>
    public static JsonDocument Parse(ReadOnlyMemory<byte> utf8)
    {
        StrictJson.Check(utf8.Span);
        try
        {
            return JsonDocument.Parse(utf8, Options);
        }
        catch (JsonException)
        {
            // The check passed, so the document refused a repeated key; a second, allocating pass names it.
            StrictJson.Check(utf8.Span, findDuplicates: true);
            throw ApiException.Invalid("body", "The request body is not valid JSON.", "invalid_json");
        }
    }

    /// <summary>The whole body in a pooled buffer that goes back to the pool when the request ends.</summary>
    private static async Task<ReadOnlyMemory<byte>> ReadBytesAsync(HttpContext context, ApiLimits limits)
    {
        var buffer = new PooledBody((int)Math.Min((context.Request.ContentLength ?? 4096) + 1, limits.MaxRequestBodyBytes + 1));
        context.Response.RegisterForDispose(buffer);
        try
        {
            while (true)
            {
                var read = await context.Request.Body.ReadAsync(buffer.Free(limits.MaxRequestBodyBytes + 1), context.RequestAborted);
                if (read == 0) return buffer.Written;
                buffer.Advance(read);
                if (buffer.Written.Length > limits.MaxRequestBodyBytes) throw TooLarge(null, limits);
            }
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw TooLarge(null, limits);
        }
    }

    /// <summary>A growing buffer rented from the request-data pool; disposing it clears and returns the buffer.</summary>
    private sealed class PooledBody(int initialSize) : IDisposable
    {
        private byte[] _array = ClearingArrayPool<byte>.Rent(initialSize);
        private int _length;

        public ReadOnlyMemory<byte> Written => _array.AsMemory(0, _length);

        /// <summary>Room for the next read, doubling the buffer (up to <paramref name="cap"/> bytes) when it is full.</summary>
        public Memory<byte> Free(long cap)
        {
            if (_length == _array.Length)
            {
                var larger = ClearingArrayPool<byte>.Rent((int)Math.Min(_array.Length * 2L, Math.Max(cap, _array.Length + 1L)));
                _array.AsSpan(0, _length).CopyTo(larger);
                ClearingArrayPool<byte>.Return(_array);
                _array = larger;
            }
            return _array.AsMemory(_length);
        }

        public void Advance(int count) => _length += count;

        public void Dispose()
        {
            ClearingArrayPool<byte>.Return(_array);
            _array = [];
            _length = 0;
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
