using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Hosting;

/// <summary>
/// <c>Bulwark:Logging:Format=json</c> (<c>serve --log-format json</c>): one JSON object a line on the
/// console, for a log shipper, with the trace and span ids of the request being served in its scopes
/// (<c>TraceId</c>, <c>SpanId</c>, <c>ParentId</c>), so a line can be joined to its trace. The lines pass
/// the same secret redactor as the text format: this only changes the formatter.
/// </summary>
public static class JsonConsoleLogs
{
    public static ILoggingBuilder AddBulwarkJsonConsole(this ILoggingBuilder logging)
    {
        logging.AddJsonConsole(o =>
        {
            o.IncludeScopes = true;
            o.UseUtcTimestamp = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
            o.JsonWriterOptions = new JsonWriterOptions { Indented = false };
        });
        logging.Configure(o => o.ActivityTrackingOptions = ActivityTrackingOptions.TraceId | ActivityTrackingOptions.SpanId | ActivityTrackingOptions.ParentId);
        return logging;
    }
}
