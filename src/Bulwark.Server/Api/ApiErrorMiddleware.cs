using Bulwark.Server.Requests;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Api;

/// <summary>
/// The edge of the pipeline: every failure leaves as OpenAI's error shape with the right status.
/// Refusals keep their message; anything unexpected becomes a 500 that says only that, with the
/// request id to find the log line — internal detail never reaches the client.
/// </summary>
public sealed class ApiErrorMiddleware(RequestDelegate next, ILogger<ApiErrorMiddleware> logger)
{
    /// <summary>nginx's code for "client closed request", used in metrics for requests the client abandoned.</summary>
    public const int ClientClosedRequest = 499;

    public async Task InvokeAsync(HttpContext context)
    {
        try
        {
            await next(context);
        }
        catch (ApiException e)
        {
            await ErrorResponse.WriteAsync(context, e);
        }
        catch (Exception) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client left; there is nobody to answer. Its sequences were cancelled with the request.
            if (!context.Response.HasStarted) context.Response.StatusCode = ClientClosedRequest;
        }
        catch (BadHttpRequestException e)
        {
            await ErrorResponse.WriteAsync(context, new ApiException(e.StatusCode, $"The request could not be read: {e.Message}", "invalid_request_error", "body", "bad_request"));
        }
        catch (Exception e)
        {
            // Logged without the request body: prompts are the caller's data.
            logger.LogError(e, "Unhandled error on {Method} {Path} (request {RequestId})", context.Request.Method, context.Request.Path, context.TraceIdentifier);
            if (context.Response.HasStarted) return;
            await ErrorResponse.WriteAsync(context, new ApiException(StatusCodes.Status500InternalServerError,
                $"The server failed to process the request (request id {context.TraceIdentifier}).", "server_error", null, "internal_error"));
        }
    }
}
