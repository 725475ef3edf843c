using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace Bulwark.Server.Hosting;

/// <summary>The console log's settings (<c>Bulwark:Logging</c>); levels stay ASP.NET Core's own <c>Logging:LogLevel</c>.</summary>
public sealed class ConsoleLogOptions
{
    public const string Section = "Bulwark:Logging";

    /// <summary><c>text</c> (the default console format) or <c>json</c> (<see cref="JsonConsoleLogs"/>).</summary>
    public string Format { get; set; } = "text";
}

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
