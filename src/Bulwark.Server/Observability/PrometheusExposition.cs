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
        series.Record(series.LabelsOf(tags), value);
    }

    /// <summary>A label set's exposition text, built from scratch: what <see cref="LabelCache"/> remembers, and its slow twin in the tests.</summary>
    internal static string Labels(ReadOnlySpan<KeyValuePair<string, object?>> tags)
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
                // Label values escape backslash, quote and newline (exposition format 0.0.4).
                if (c is '\\' or '"') text.Append('\\').Append(c);
                else if (c == '\n') text.Append("\\n");
                else text.Append(c);
            }
            text.Append('"');
        }
        return text.ToString();
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
        private readonly LabelCache _labels = new();

        public string LabelsOf(ReadOnlySpan<KeyValuePair<string, object?>> tags) => _labels.Get(tags);

        public void Record(string labels, double value)
        {
            var cell = _cells.GetOrAdd(labels, static (_, n) => new Cell(n), bounds.Length);
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

/// <summary>
/// The exposition text of the label sets one instrument was recorded with, so a measurement with a label set
/// seen before costs a hash and a comparison instead of sorting, formatting and a string (every request records
/// a dozen measurements). Entries hold the tags as they came (keys and boxed values), compared key by key
/// (ordinal) and value by value (<see cref="object.Equals(object?, object?)"/>, only for values whose equality
/// means the same text); the same tags in another order are another entry with the same text. Copy on write: readers never lock. At most <see cref="MaxEntries"/>
/// label sets are remembered; past that each measurement builds its text as before.
/// </summary>
internal sealed class LabelCache
{
    public const int MaxEntries = 512;

    private readonly Lock _add = new();
    private volatile Entry[] _entries = [];

    private sealed record Entry(int Hash, KeyValuePair<string, object?>[] Tags, string Text);

    public int Count => _entries.Length;

    public string Get(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (tags.Length == 0) return "";
        foreach (var (_, value) in tags)
            if (!Comparable(value)) return PrometheusExposition.Labels(tags);
        var hash = Hash(tags);
        foreach (var e in _entries)
            if (e.Hash == hash && Same(e.Tags, tags)) return e.Text;
        var text = PrometheusExposition.Labels(tags);
        lock (_add)
        {
            var entries = _entries;
            var known = false;
            foreach (var e in entries) known |= e.Hash == hash && Same(e.Tags, tags);
            if (!known && entries.Length < MaxEntries) _entries = [.. entries, new Entry(hash, tags.ToArray(), text)];
        }
        return text;
    }

    /// <summary>
    /// Values whose equality means the same text: null, strings, integers, booleans, enums. Anything else (a float,
    /// where 0 and -0 are equal but print apart; an object that may change) is formatted every time.
    /// </summary>
    private static bool Comparable(object? value) =>
        value is null or string or int or long or short or byte or uint or ulong or ushort or sbyte or bool or char || value.GetType().IsEnum;

    private static int Hash(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var h = new HashCode();
        foreach (var (key, value) in tags)
        {
            h.Add(key, StringComparer.Ordinal);
            h.Add(value);
        }
        return h.ToHashCode();
    }

    private static bool Same(KeyValuePair<string, object?>[] known, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (known.Length != tags.Length) return false;
        for (var i = 0; i < known.Length; i++)
            if (!string.Equals(known[i].Key, tags[i].Key, StringComparison.Ordinal) || !Equals(known[i].Value, tags[i].Value)) return false;
        return true;
    }
}
