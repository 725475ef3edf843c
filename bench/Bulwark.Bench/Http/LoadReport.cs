using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Bulwark.Bench.Http;

/// <summary>Percentiles by nearest rank (the smallest sample with at least p% of samples at or below it).</summary>
internal readonly record struct Percentiles(int Count, double P50, double P90, double P99)
{
    public static Percentiles Of(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0) return new Percentiles(0, double.NaN, double.NaN, double.NaN);
        double At(double p) => sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Length) - 1, 0, sorted.Length - 1)];
        return new Percentiles(sorted.Length, At(50), At(90), At(99));
    }
}

/// <summary>The figures <c>bench/run serve</c> prints: throughput, latency percentiles and errors.</summary>
internal sealed record LoadReport(
    string Url, string Model, int Concurrency, bool Stream, int Requests, int Succeeded, IReadOnlyDictionary<string, int> Errors,
    string? FirstError, double Seconds, long CompletionTokens, Percentiles Latency, Percentiles TimeToFirstToken, Percentiles InterTokenLatency)
{
    public double RequestsPerSecond => Seconds > 0 ? Succeeded / Seconds : 0;
    public double TokensPerSecond => Seconds > 0 ? CompletionTokens / Seconds : 0;

    public static LoadReport From(LoadSettings settings, string model, IReadOnlyList<RequestSample> samples, double seconds)
    {
        var ok = samples.Where(s => s.Error is null && s.Status is >= 200 and < 300).ToList();
        var errors = samples.Except(ok).GroupBy(s => s.Status == 0 ? "network" : s.Status.ToString(CultureInfo.InvariantCulture))
            .ToDictionary(g => g.Key, g => g.Count());
        return new LoadReport(settings.Url.ToString(), model, settings.Concurrency, settings.Stream, samples.Count, ok.Count, errors,
            samples.FirstOrDefault(s => s.Error is not null)?.Error, seconds, ok.Sum(s => (long)s.CompletionTokens),
            Percentiles.Of(ok.Select(s => s.Latency)), Percentiles.Of(ok.Where(s => s.TimeToFirstToken is not null).Select(s => s.TimeToFirstToken!.Value)),
            Percentiles.Of(ok.SelectMany(s => s.InterTokenLatencies)));
    }

    public string ToTable()
    {
        var t = new StringBuilder();
        t.AppendLine(Invariant($"bench serve {Url} model {Model}: {Requests} requests, concurrency {Concurrency}, {(Stream ? "streaming" : "not streaming")}"));
        t.AppendLine(Invariant($"  succeeded      {Succeeded} of {Requests} in {Seconds:0.00} s"));
        t.AppendLine(Invariant($"  errors         {(Errors.Count == 0 ? "none" : string.Join(", ", Errors.Select(e => $"{e.Key}: {e.Value}")))}"));
        if (FirstError is not null) t.AppendLine("  first error    " + FirstError);
        t.AppendLine(Invariant($"  requests/s     {RequestsPerSecond:0.00}"));
        t.AppendLine(Invariant($"  tokens/s       {TokensPerSecond:0.0} (completion tokens, {CompletionTokens} in all)"));
        t.AppendLine("  metric (ms)         n      p50      p90      p99");
        Row(t, "latency", Latency);
        Row(t, "TTFT", TimeToFirstToken);
        Row(t, "ITL", InterTokenLatency);
        return t.ToString();
    }

    public string ToJson()
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteString("url", Url);
            json.WriteString("model", Model);
            json.WriteNumber("concurrency", Concurrency);
            json.WriteBoolean("stream", Stream);
            json.WriteNumber("requests", Requests);
            json.WriteNumber("succeeded", Succeeded);
            json.WriteStartObject("errors");
            foreach (var (status, count) in Errors) json.WriteNumber(status, count);
            json.WriteEndObject();
            json.WriteNumber("seconds", Seconds);
            json.WriteNumber("requests_per_second", RequestsPerSecond);
            json.WriteNumber("completion_tokens", CompletionTokens);
            json.WriteNumber("tokens_per_second", TokensPerSecond);
            Write(json, "latency_ms", Latency);
            Write(json, "ttft_ms", TimeToFirstToken);
            Write(json, "itl_ms", InterTokenLatency);
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static void Row(StringBuilder t, string name, Percentiles p) =>
        t.AppendLine(p.Count == 0
            ? Invariant($"  {name,-12} {0,8}        -        -        -")
            : Invariant($"  {name,-12} {p.Count,8} {p.P50 * 1000,8:0.00} {p.P90 * 1000,8:0.00} {p.P99 * 1000,8:0.00}"));

    private static void Write(Utf8JsonWriter json, string name, Percentiles p)
    {
        json.WriteStartObject(name);
        json.WriteNumber("count", p.Count);
        foreach (var (key, value) in new[] { ("p50", p.P50), ("p90", p.P90), ("p99", p.P99) })
            if (double.IsNaN(value)) json.WriteNull(key); else json.WriteNumber(key, value * 1000);
        json.WriteEndObject();
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
