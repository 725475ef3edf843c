using System.Diagnostics;
using Bulwark.Server.Observability;

namespace Bulwark.Server.Backends.Upstream;

/// <summary>
/// The client span of one upstream attempt (a retry is another span), a child of the generation span,
/// and the W3C trace context it sends upstream, so an engine that traces (vLLM, another Bulwark) joins
/// the same trace. Injected here rather than by HttpClient instrumentation: that would add a second
/// client span per attempt, and the health checks' requests would each start a trace of their own.
/// Attributes: pool, endpoint (scheme://host:port, never a path with a query or a credential), attempt
/// number, HTTP status, outcome — the same words as <c>bulwark_upstream_requests_total</c>.
/// </summary>
internal static class AttemptSpan
{
    public static Activity? Start(Activity? generation, UpstreamEndpoint endpoint, int attempt)
    {
        if (!BulwarkTracing.Source.HasListeners()) return null;
        var span = BulwarkTracing.Start("upstream " + endpoint.Pool, ActivityKind.Client, generation);
        if (span is not { IsAllDataRequested: true }) return span;
        span.SetTag(BulwarkTracing.Attributes.UpstreamPool, endpoint.Pool);
        span.SetTag(BulwarkTracing.Attributes.UpstreamEndpoint, endpoint.Name);
        span.SetTag(BulwarkTracing.Attributes.UpstreamAttempt, attempt);
        span.SetTag("http.request.method", "POST");
        return span;
    }

    /// <summary>Sets <c>traceparent</c> (and <c>tracestate</c>) from <paramref name="span"/>, replacing any already there.</summary>
    public static void Inject(Activity? span, HttpRequestMessage request)
    {
        if (span is null) return;
        DistributedContextPropagator.Current.Inject(span, request, static (carrier, name, value) =>
        {
            var headers = ((HttpRequestMessage)carrier!).Headers;
            headers.Remove(name);
            headers.TryAddWithoutValidation(name, value);
        });
    }

    public static void End(Activity? span, string outcome)
    {
        if (span is null) return;
        span.SetTag(BulwarkTracing.Attributes.UpstreamOutcome, outcome);
        if (outcome is "success" or "cancelled") span.Stop();
        else BulwarkTracing.Fail(span, outcome);
    }
}
