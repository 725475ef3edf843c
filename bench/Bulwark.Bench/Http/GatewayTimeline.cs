using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http;
using Microsoft.AspNetCore.Http;

namespace Bulwark.Bench.Http;

/// <summary>
/// Where a request through the gateway spends its time, median µs per segment:
/// <see cref="GatewayIn"/> — Kestrel has the request at the gateway until the gateway's request to the
/// upstream is handed to its HttpClient (identity, quotas, parsing, the spine, the upstream body);
/// <see cref="UpstreamHop"/> — from there until the gateway's HttpClient has the upstream's answer
/// (<see cref="UpstreamServer"/> of it inside the upstream's Kestrel, the rest sockets and HttpClient);
/// <see cref="GatewayOut"/> — from the upstream's answer until the gateway's Kestrel finished the response
/// (reading and parsing the upstream body, the response, settlement, the audit record);
/// <see cref="Client"/> — the client's send to the gateway's Kestrel and back, outside the gateway.
/// <see cref="GatewayOwn"/> (in + out, per request) is the gateway's own time.
/// </summary>
internal readonly record struct GatewaySegments(int Requests, double GatewayIn, double UpstreamHop, double UpstreamServer, double GatewayOut, double GatewayOwn, double Client);

/// <summary>
/// Takes <see cref="GatewaySegments"/> from the diagnostic events ASP.NET Core's hosting
/// (<c>Microsoft.AspNetCore.Hosting.BeginRequest</c>/<c>EndRequest</c>) and HttpClient's event source
/// (<c>RequestStart</c>, <c>ResponseHeadersStop</c>) raise when someone listens — nothing is added to
/// the server for it, and nothing listens outside this measurement. Listening costs a few µs per event,
/// so the segments are measured in a phase of their own, after the latency and cost figures. Requests
/// must go one at a time, and only through the gateway.
/// </summary>
internal sealed class GatewayTimeline : IObserver<DiagnosticListener>, IDisposable
{
    private readonly int _gatewayPort;
    private readonly int _upstreamPort;
    private readonly ConcurrentQueue<(Point Point, long At)> _events = new();
    private readonly List<IDisposable> _subscriptions = [];
    private readonly IDisposable _all;
    private readonly HttpEvents _http;

    private enum Point { GatewayBegin, GatewayEnd, UpstreamBegin, UpstreamEnd, OutRequest, OutResponse, Other }

    public GatewayTimeline(int gatewayPort, int upstreamPort)
    {
        (_gatewayPort, _upstreamPort) = (gatewayPort, upstreamPort);
        _all = DiagnosticListener.AllListeners.Subscribe(this);
        _http = new HttpEvents(this);
    }

    /// <summary>Sends <paramref name="requests"/> requests (one at a time, through the gateway) and returns the median of each segment.</summary>
    public async Task<GatewaySegments> MeasureAsync(Func<Task<double>> through, int requests)
    {
        var gin = new List<double>(requests);
        var hop = new List<double>(requests);
        var server = new List<double>(requests);
        var gout = new List<double>(requests);
        var own = new List<double>(requests);
        var client = new List<double>(requests);
        for (var i = 0; i < requests; i++)
        {
            _events.Clear();
            var total = await through();
            // Hosting ends a request after its response went out, so the client may have it first (and the
            // gateway may have finished before the upstream's hosting ended its own).
            // Each point is taken in causal order (the first after the point before it), so an event of another
            // request — the previous one's hosting ending late, or a health check to the upstream — is not paired with
            // this one (a fresh clone's CI once measured the upstream's time as zero that way).
            var waited = Stopwatch.StartNew();
            long t1, t2, t3, t4, t5, t6;
            while (!Chain(out t1, out t2, out t3, out t4, out t5, out t6))
            {
                if (waited.Elapsed > TimeSpan.FromSeconds(10))
                    throw new InvalidOperationException($"the diagnostic events of a request through the gateway are incomplete ({string.Join(", ", _events.Select(e => e.Point).Distinct())})");
                await Task.Delay(1);
            }
            double Us(long from, long to) => Stopwatch.GetElapsedTime(from, to).TotalMicroseconds;
            gin.Add(Us(t1, t2));
            hop.Add(Us(t2, t5));
            server.Add(Us(t3, t4));
            gout.Add(Us(t5, t6));
            own.Add(Us(t1, t2) + Us(t5, t6));
            client.Add(total - Us(t1, t6));
        }
        return new GatewaySegments(requests, Median(gin), Median(hop), Median(server), Median(gout), Median(own), Median(client));
    }

    /// <summary>The six points of one request, each the first of its kind after the one it follows causally.</summary>
    private bool Chain(out long gatewayBegin, out long outRequest, out long upstreamBegin, out long upstreamEnd, out long outResponse, out long gatewayEnd)
    {
        var events = _events.ToArray();
        Array.Sort(events, (a, b) => a.At.CompareTo(b.At));
        long First(Point point, long after)
        {
            foreach (var (p, time) in events)
                if (p == point && time >= after) return time;
            return -1;
        }
        gatewayBegin = First(Point.GatewayBegin, long.MinValue);
        outRequest = gatewayBegin < 0 ? -1 : First(Point.OutRequest, gatewayBegin);
        upstreamBegin = outRequest < 0 ? -1 : First(Point.UpstreamBegin, outRequest);
        upstreamEnd = upstreamBegin < 0 ? -1 : First(Point.UpstreamEnd, upstreamBegin);
        outResponse = outRequest < 0 ? -1 : First(Point.OutResponse, outRequest);
        gatewayEnd = outResponse < 0 ? -1 : First(Point.GatewayEnd, outResponse);
        return upstreamEnd >= 0 && gatewayEnd >= 0;
    }

    private static double Median(List<double> values)
    {
        values.Sort();
        var mid = values.Count / 2;
        return values.Count % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
    }

    public void OnNext(DiagnosticListener listener)
    {
        if (listener.Name == "Microsoft.AspNetCore")
            lock (_subscriptions)
                _subscriptions.Add(listener.Subscribe(new Observer(this),
                    name => name is "Microsoft.AspNetCore.Hosting.BeginRequest" or "Microsoft.AspNetCore.Hosting.EndRequest"));
    }

    public void OnCompleted() { }

    public void OnError(Exception error) { }

    private void Record(string name, object? payload)
    {
        var at = Stopwatch.GetTimestamp();
        var begin = name.EndsWith("BeginRequest", StringComparison.Ordinal);
        var point = (Property(payload, "httpContext") as HttpContext)?.Connection.LocalPort switch
        {
            var p when p == _gatewayPort => begin ? Point.GatewayBegin : Point.GatewayEnd,
            var p when p == _upstreamPort => begin ? Point.UpstreamBegin : Point.UpstreamEnd,
            _ => Point.Other,
        };
        if (point != Point.Other) _events.Enqueue((point, at));
    }

    /// <summary>
    /// HttpClient's side, from its <c>System.Net.Http</c> event source (an in-process listener is called on the
    /// thread that raises the event): a request started to the upstream's port, and the first response headers
    /// read after it — the gateway's (the client's own come only after the gateway answered).
    /// </summary>
    private void RecordClient(string? name, IReadOnlyList<object?>? payload)
    {
        var at = Stopwatch.GetTimestamp();
        if (name == "RequestStart" && payload is { Count: >= 3 } && Convert.ToInt32(payload[2], System.Globalization.CultureInfo.InvariantCulture) == _upstreamPort)
            _events.Enqueue((Point.OutRequest, at));
        else if (name == "ResponseHeadersStop") _events.Enqueue((Point.OutResponse, at));
    }

    private static object? Property(object? payload, string name) =>
        payload?.GetType().GetProperty(name, System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.IgnoreCase)?.GetValue(payload);

    public void Dispose()
    {
        _all.Dispose();
        _http.Dispose();
        lock (_subscriptions)
            foreach (var s in _subscriptions) s.Dispose();
    }

    private sealed class HttpEvents(GatewayTimeline timeline) : System.Diagnostics.Tracing.EventListener
    {
        protected override void OnEventSourceCreated(System.Diagnostics.Tracing.EventSource source)
        {
            if (source.Name == "System.Net.Http") EnableEvents(source, System.Diagnostics.Tracing.EventLevel.Informational);
        }

        protected override void OnEventWritten(System.Diagnostics.Tracing.EventWrittenEventArgs e) =>
            // Events raised while the base constructor runs come before the timeline is set.
            timeline?.RecordClient(e.EventName, e.Payload);
    }

    private sealed class Observer(GatewayTimeline timeline) : IObserver<KeyValuePair<string, object?>>
    {
        public void OnNext(KeyValuePair<string, object?> value) => timeline.Record(value.Key, value.Value);
        public void OnCompleted() { }
        public void OnError(Exception error) { }
    }
}
