using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace Bulwark.Server.Observability;

/// <summary>
/// Aggregates one <see cref="Meter"/>'s measurements and renders them in Prometheus' text
/// exposition format 0.0.4. Written by hand because the OpenTelemetry Prometheus exporter is
/// still a beta package and renames instruments; this keeps the documented names exact.
/// Counters become <c>_total</c>, histograms get cumulative <c>_bucket</c>/<c>_sum</c>/<c>_count</c>.
/// </summary>
public sealed class PrometheusExposition : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<Instrument, Series> _series = new();
    private readonly Lock _scrape = new();

    public PrometheusExposition(Meter meter)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter, meter)) listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Record(i, v, tags));
        _listener.SetMeasurementEventCallback<int>((i, v, tags, _) => Record(i, v, tags));
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Record(i, v, tags));
        _listener.Start();
    }

    public string Render()
    {
        lock (_scrape)
        {
            // Observable gauges report their current value only when asked.
            _listener.RecordObservableInstruments();
            var text = new StringBuilder(4096);
            foreach (var (instrument, series) in _series.OrderBy(p => p.Key.Name, StringComparer.Ordinal))
                series.Write(instrument, text);
            return text.ToString();
        }
    }

    /// <summary>
    /// The figures <see cref="Render"/> writes, as values rather than text: one sample per instrument and label set
    /// (counters under their exported <c>_total</c> name). The console's overview reads these, so it shows what
    /// <c>/metrics</c> shows.
    /// </summary>
    public IReadOnlyList<MetricSample> Snapshot()
    {
        lock (_scrape)
        {
            _listener.RecordObservableInstruments();
            var samples = new List<MetricSample>();
            foreach (var (instrument, series) in _series) series.Collect(instrument, samples);
            return samples;
        }
    }

    public void Dispose() => _listener.Dispose();

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var series = _series.GetOrAdd(instrument, static i => new Series(Kind(i), i.IsObservable, BoundsOf(i)));
        series.Record(Labels(tags), value);
    }

    [ThreadStatic] private static char[]? _labelText;

    /// <summary>
    /// The label set as exposition text (<c>a="x",b="y"</c>, keys in ordinal order), written into a
    /// per-thread buffer that is valid until this thread's next measurement.
    /// </summary>
    /// <remarks>
    /// Perf: histograms such as the inter-token latency record once per generated token; building a
    /// string (and sorting a copy of the tags) each time was a few percent of all the bytes a request
    /// allocates. The cell is found by the span (<see cref="Series.Record"/>); a string is made only
    /// for a label set seen for the first time. <see cref="PlainLabels"/> is the slow twin.
    /// </remarks>
    internal static ReadOnlySpan<char> Labels(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (tags.Length == 0) return "";
        Span<int> order = tags.Length <= 16 ? stackalloc int[tags.Length] : new int[tags.Length];
        for (var i = 0; i < order.Length; i++)
        {
            // Insertion sort: label sets have a handful of keys.
            var j = i;
            for (; j > 0 && string.CompareOrdinal(tags[order[j - 1]].Key, tags[i].Key) > 0; j--) order[j] = order[j - 1];
            order[j] = i;
        }
        var text = new LabelText(_labelText ??= new char[256]);
        Span<char> formatted = stackalloc char[64];
        foreach (var i in order)
        {
            var (key, value) = tags[i];
            if (text.Length > 0) text.Append(',');
            text.Append(key);
            text.Append("=\"");
            ReadOnlySpan<char> valueText = value switch
            {
                string s => s,
                ISpanFormattable f when f.TryFormat(formatted, out var written, default, CultureInfo.InvariantCulture) => formatted[..written],
                _ => Convert.ToString(value, CultureInfo.InvariantCulture) ?? "",
            };
            foreach (var c in valueText)
            {
                // Label values escape backslash, quote and newline (exposition format 0.0.4).
                if (c is '\\' or '"') { text.Append('\\'); text.Append(c); }
                else if (c == '\n') text.Append("\\n");
                else text.Append(c);
            }
            text.Append('"');
        }
        _labelText = text.Buffer;
        return text.Written;
    }

    /// <summary>The slow twin of <see cref="Labels"/>: a new string, built the obvious way.</summary>
    internal static string PlainLabels(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (tags.Length == 0) return "";
        var sorted = tags.ToArray();
        Array.Sort(sorted, (a, b) => string.CompareOrdinal(a.Key, b.Key));
        var text = new StringBuilder();
        foreach (var (key, value) in sorted)
        {
            if (text.Length > 0) text.Append(',');
            text.Append(key).Append("=\"");
            foreach (var c in Convert.ToString(value, CultureInfo.InvariantCulture) ?? "")
            {
                if (c is '\\' or '"') text.Append('\\').Append(c);
                else if (c == '\n') text.Append("\\n");
                else text.Append(c);
            }
            text.Append('"');
        }
        return text.ToString();
    }

    /// <summary>Characters appended to a buffer that doubles when full.</summary>
    private ref struct LabelText(char[] buffer)
    {
        public char[] Buffer = buffer;
        public int Length;

        public readonly ReadOnlySpan<char> Written => Buffer.AsSpan(0, Length);

        public void Append(char c)
        {
            if (Length == Buffer.Length) Array.Resize(ref Buffer, Buffer.Length * 2);
            Buffer[Length++] = c;
        }

        public void Append(ReadOnlySpan<char> text)
        {
            foreach (var c in text) Append(c);
        }
    }

    /// <summary>A histogram's upper bounds: the instrument's advice (<see cref="LatencyBuckets"/>), else the default set.</summary>
    private static double[] BoundsOf(Instrument i) => i switch
    {
        Histogram<double> { Advice.HistogramBucketBoundaries: { Count: > 0 } bounds } => [.. bounds],
        _ => LatencyBuckets.Default,
    };

    private enum SeriesKind { Counter, Gauge, Histogram }

    private static SeriesKind Kind(Instrument i) => i switch
    {
        Counter<long> or Counter<int> or Counter<double> => SeriesKind.Counter,
        ObservableCounter<long> or ObservableCounter<int> or ObservableCounter<double> => SeriesKind.Counter,
        Histogram<long> or Histogram<int> or Histogram<double> => SeriesKind.Histogram,
        _ => SeriesKind.Gauge,
    };

    /// <summary>One instrument's values, one cell per label set.</summary>
    private sealed class Series(SeriesKind kind, bool observable, double[] bounds)
    {
        private readonly ConcurrentDictionary<string, Cell> _cells = new(StringComparer.Ordinal);

        public void Record(ReadOnlySpan<char> labels, double value)
        {
            if (!_cells.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(labels, out var cell))
                cell = _cells.GetOrAdd(labels.ToString(), static (_, n) => new Cell(n), bounds.Length);
            lock (cell)
            {
                switch (kind)
                {
                    // Observable counters report their running total, not an increment.
                    case SeriesKind.Counter when observable: cell.Sum = value; break;
                    case SeriesKind.Counter: cell.Sum += value; break;
                    case SeriesKind.Gauge: cell.Sum = value; break;
                    case SeriesKind.Histogram:
                        cell.Sum += value;
                        cell.Count++;
                        var b = Array.BinarySearch(bounds, value);
                        cell.Buckets[b >= 0 ? b : ~b]++;
                        break;
                }
            }
        }

        public void Write(Instrument instrument, StringBuilder text)
        {
            var name = kind == SeriesKind.Counter ? instrument.Name + "_total" : instrument.Name;
            if (instrument.Description is { } help) text.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
            text.Append("# TYPE ").Append(name).Append(' ').Append(kind switch
            {
                SeriesKind.Counter => "counter",
                SeriesKind.Histogram => "histogram",
                _ => "gauge",
            }).Append('\n');
            foreach (var (labels, cell) in _cells.OrderBy(c => c.Key, StringComparer.Ordinal))
            {
                lock (cell)
                {
                    if (kind != SeriesKind.Histogram)
                    {
                        Sample(text, name, labels, cell.Sum);
                        continue;
                    }
                    long cumulative = 0;
                    for (var i = 0; i < bounds.Length; i++)
                    {
                        cumulative += cell.Buckets[i];
                        Sample(text, name + "_bucket", Join(labels, $"le=\"{Format(bounds[i])}\""), cumulative);
                    }
                    Sample(text, name + "_bucket", Join(labels, "le=\"+Inf\""), cell.Count);
                    Sample(text, name + "_sum", labels, cell.Sum);
                    Sample(text, name + "_count", labels, cell.Count);
                }
            }
        }

        public void Collect(Instrument instrument, List<MetricSample> samples)
        {
            var name = kind == SeriesKind.Counter ? instrument.Name + "_total" : instrument.Name;
            foreach (var (labels, cell) in _cells)
            {
                lock (cell)
                {
                    samples.Add(new MetricSample(name, ParseLabels(labels), cell.Sum, kind == SeriesKind.Histogram ? cell.Count : 0,
                        kind == SeriesKind.Histogram ? bounds : null, kind == SeriesKind.Histogram ? [.. cell.Buckets] : null));
                }
            }
        }

        /// <summary>The label set back from its exposition text (<c>a="x",b="y \"q\""</c>), as <see cref="Labels"/> wrote it.</summary>
        private static Dictionary<string, string> ParseLabels(string labels)
        {
            var pairs = new Dictionary<string, string>(StringComparer.Ordinal);
            var i = 0;
            while (i < labels.Length)
            {
                var eq = labels.IndexOf('=', i);
                var key = labels[i..eq];
                var value = new StringBuilder();
                for (i = eq + 2; labels[i] != '"'; i++)
                {
                    if (labels[i] == '\\') { i++; value.Append(labels[i] == 'n' ? '\n' : labels[i]); }
                    else value.Append(labels[i]);
                }
                pairs[key] = value.ToString();
                i += 2; // the closing quote and the comma
            }
            return pairs;
        }

        private static string Join(string labels, string extra) => labels.Length == 0 ? extra : labels + "," + extra;

        private static void Sample(StringBuilder text, string name, string labels, double value)
        {
            text.Append(name);
            if (labels.Length > 0) text.Append('{').Append(labels).Append('}');
            text.Append(' ').Append(Format(value)).Append('\n');
        }

        private static string Format(double v) => double.IsPositiveInfinity(v) ? "+Inf" : v.ToString("R", CultureInfo.InvariantCulture);
    }

    private sealed class Cell(int bounds)
    {
        public double Sum;
        public long Count;
        public readonly long[] Buckets = new long[bounds + 1];
    }
}

/// <summary>
/// One series as <c>/metrics</c> exposes it: a counter's total or a gauge's value (<see cref="Value"/>), or a
/// histogram's sum, count and per-bucket counts (not cumulative; <see cref="Buckets"/> has one more entry than
/// <see cref="Bounds"/>, for +Inf).
/// </summary>
public sealed record MetricSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value, long Count, double[]? Bounds, long[]? Buckets);
