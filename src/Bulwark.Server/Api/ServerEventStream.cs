using System.Buffers;
using System.Text.Json;
using Bulwark.Server.Requests;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Server.Api;

/// <summary>
/// Server-Sent Events on a response: <c>data: {json}\n\n</c> per event, flushed at once so each
/// token reaches the client when it is generated. One instance per response; reuses one buffer.
/// </summary>
public sealed class ServerEventStream
{
    private static readonly byte[] Prefix = "data: "u8.ToArray();
    private static readonly byte[] Suffix = "\n\n"u8.ToArray();
    private readonly HttpResponse _response;
    private readonly ArrayBufferWriter<byte> _buffer = new(1024);
    private readonly Utf8JsonWriter _json;

    public ServerEventStream(HttpContext context)
    {
        _response = context.Response;
        _json = new Utf8JsonWriter(_buffer);
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _response.StatusCode = StatusCodes.Status200OK;
        _response.ContentType = "text/event-stream; charset=utf-8";
        _response.Headers.CacheControl = "no-cache";
        // Proxies such as nginx buffer responses unless told not to, which would hold tokens back.
        _response.Headers["X-Accel-Buffering"] = "no";
        _response.HttpContext.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        return _response.StartAsync(cancellationToken);
    }

    /// <summary>Writes one event whose JSON payload <paramref name="write"/> produces.</summary>
    public async Task WriteAsync<TState>(TState state, Action<Utf8JsonWriter, TState> write, CancellationToken cancellationToken)
    {
        _buffer.ResetWrittenCount();
        _json.Reset(_buffer);
        write(_json, state);
        _json.Flush();
        await WriteRawAsync(_buffer.WrittenMemory, cancellationToken);
    }

    public Task WriteDoneAsync(CancellationToken cancellationToken) => WriteRawAsync("[DONE]"u8.ToArray(), cancellationToken);

    public Task WriteErrorAsync(ApiException error, CancellationToken cancellationToken) => WriteRawAsync(ErrorResponse.Serialize(error), cancellationToken);

    private async Task WriteRawAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        await _response.Body.WriteAsync(Prefix, cancellationToken);
        await _response.Body.WriteAsync(payload, cancellationToken);
        await _response.Body.WriteAsync(Suffix, cancellationToken);
        await _response.Body.FlushAsync(cancellationToken);
    }
}
